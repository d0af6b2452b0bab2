// Runs the built bundle (../static/pki.bundle.js) in Node's WebCrypto and
// checks its output with OpenSSL and NSS's pk12util: the CSR verifies, and
// the PKCS#12 opens with the password and holds the key and certificate.
//   node --experimental-vm-modules test/roundtrip.mjs [csr-out.pem]
// (needs openssl and pk12util; the flag gives vm the dynamic-import hook
// through which the bundle loads the 3DES module; the optional argument
// saves the CSR, e.g. to ../testdata/pkijs-csr.pem, which a Go test parses
// with the CA's own parser)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import vm from "node:vm";

const bundleURL = new URL("../../static/pki.bundle.js", import.meta.url);
// The bundle imports the 3DES module (pki-legacy.bundle.mjs) by a name
// relative to itself when the compatibility file is asked for; imports
// are counted, to show the default file needs none.
const imported = [];
vm.runInThisContext(readFileSync(bundleURL, "utf8"), {
  filename: bundleURL.pathname,
  importModuleDynamically: (specifier) => {
    imported.push(specifier);
    return import(new URL(specifier, bundleURL).href);
  },
});
const pki = globalThis.DevicegatePKI;
const dir = mkdtempSync(join(tmpdir(), "dg-pki-"));
// Kept only when a check failed, for a look at the files.
let passed = false;
process.on("exit", () => { if (passed) rmSync(dir, { recursive: true, force: true }); });
// run returns stdout and stderr together (openssl reports on stderr) and
// throws when the command fails.
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout + r.stderr;
};

const keys = await pki.generateKeyPair();
const csr = await pki.buildCSR(keys, "demo-store:小明");
writeFileSync(join(dir, "csr.pem"), csr);
if (process.argv[2]) writeFileSync(process.argv[2], csr);
console.log(run("openssl", ["req", "-verify", "-noout", "-in", "csr.pem"]).trim() || "csr: verify OK");
console.log(run("openssl", ["req", "-noout", "-subject", "-nameopt", "utf8", "-in", "csr.pem"]).trim());

run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
  "-out", "ca.pem", "-subj", "/CN=roundtrip CA", "-days", "1"]);
run("openssl", ["x509", "-req", "-in", "csr.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "1"]);
const p12 = await pki.buildPKCS12({
  privateKey: keys.privateKey, certPEM: readFileSync(join(dir, "leaf.pem"), "utf8"),
  chainPEMs: [readFileSync(join(dir, "ca.pem"), "utf8")], password: "pässwörd-123", friendlyName: "devicegate test",
});
writeFileSync(join(dir, "x.p12"), p12);
const info = run("openssl", ["pkcs12", "-info", "-nokeys", "-in", "x.p12", "-passin", "pass:pässwörd-123"]);
if (!info.includes("BEGIN CERTIFICATE")) throw new Error("openssl: no certificate in the PKCS#12");
const keyOut = run("openssl", ["pkcs12", "-nocerts", "-noenc", "-in", "x.p12", "-passin", "pass:pässwörd-123"]);
if (!keyOut.includes("BEGIN PRIVATE KEY")) throw new Error("openssl: no key in the PKCS#12");
const params = run("openssl", ["pkcs12", "-info", "-noout", "-in", "x.p12", "-passin", "pass:pässwörd-123"]);
console.log(params.trim().split("\n").join(" | "));
if (!/PBES2, PBKDF2, AES-256-CBC/.test(params) || !/sha256/i.test(params)) throw new Error("not PBES2/AES-256/SHA-256: " + params);
if (!/salt length: 8\b/.test(params)) throw new Error("MAC salt is not 8 bytes (macOS keychains refuse longer ones): " + params);
let wrong = false;
try { run("openssl", ["pkcs12", "-info", "-noout", "-in", "x.p12", "-passin", "pass:wrong"]); } catch { wrong = true; }
if (!wrong) throw new Error("a wrong password opened the PKCS#12");
const listed = run("pk12util", ["-l", "x.p12", "-W", "pässwörd-123"]);
if (!/Key/.test(listed) || !/Certificate/.test(listed)) throw new Error("pk12util: " + listed);
console.log("pk12util: key and certificate listed");

if (imported.length !== 0) throw new Error("the default PKCS#12 loaded " + imported.join(", "));

// Compatibility mode for old Windows: 3DES key, SHA-1 MAC.
const legacy = await pki.buildPKCS12({
  privateKey: keys.privateKey, certPEM: readFileSync(join(dir, "leaf.pem"), "utf8"),
  chainPEMs: [readFileSync(join(dir, "ca.pem"), "utf8")], password: "pässwörd-123", friendlyName: "devicegate legacy", legacy: true,
});
writeFileSync(join(dir, "legacy.p12"), legacy);
if (imported.join() !== "./pki-legacy.bundle.mjs") throw new Error("the compatibility PKCS#12 imported " + imported.join(", "));
const lparams = run("openssl", ["pkcs12", "-info", "-noout", "-in", "legacy.p12", "-passin", "pass:pässwörd-123"]);
console.log(lparams.trim().split("\n").join(" | "));
if (!/pbeWithSHA1And3-KeyTripleDES-CBC/.test(lparams) || !/MAC: sha1/.test(lparams)) throw new Error("legacy is not 3DES/SHA-1: " + lparams);
if (!/salt length: 8\b/.test(lparams)) throw new Error("legacy MAC salt is not 8 bytes: " + lparams);
const lkey = run("openssl", ["pkcs12", "-nocerts", "-noenc", "-in", "legacy.p12", "-passin", "pass:pässwörd-123"]);
if (!lkey.includes("BEGIN PRIVATE KEY")) throw new Error("openssl: no key in the legacy PKCS#12");
const llisted = run("pk12util", ["-l", "legacy.p12", "-W", "pässwörd-123"]);
if (!/Key/.test(llisted) || !/Certificate/.test(llisted)) throw new Error("pk12util legacy: " + llisted);
console.log("pk12util: legacy key and certificate listed");
passed = true;
console.log("roundtrip OK");
