// The bundle's entry: exposes the PKI functions to the page's own script.
import * as pki from "./pki.js";
globalThis.DevicegatePKI = pki;
