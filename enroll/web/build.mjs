// Bundles src/ into ../static (committed: the Go binary embeds it, so
// running devicegate needs no Node):
//   pki.bundle.js          the page's PKI (classic script, window.DevicegatePKI)
//   pki-legacy.bundle.mjs  node-forge's 3DES key encryption, a module that
//                          pki.bundle.js imports only for the compatibility file
//   node build.mjs [outdir]   (default ../static; make test builds into a
//   temporary directory and compares with the committed files)
import { build } from "esbuild";
import { join } from "node:path";

const outdir = process.argv[2] ?? "../static";
const common = { bundle: true, minify: true, target: "es2020", legalComments: "eof", metafile: true };

const main = await build({ ...common, entryPoints: ["src/entry.js"], format: "iife", outfile: join(outdir, "pki.bundle.js") });
await build({ ...common, entryPoints: ["src/legacy.js"], format: "esm", outfile: join(outdir, "pki-legacy.bundle.mjs") });

// The point of the split: the bundle every enrollment loads has no node-forge.
const forgeInMain = Object.keys(main.metafile.inputs).filter((f) => f.includes("node-forge"));
if (forgeInMain.length > 0) {
  throw new Error("pki.bundle.js includes node-forge (" + forgeInMain.join(", ") + "): import it only from src/legacy.js");
}
