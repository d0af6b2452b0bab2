// Bundles src/ into ../static/pki.bundle.js (committed: the Go binary
// embeds it, so running devicegate needs no Node).
//   node build.mjs [outdir]   (default ../static; make test builds into a
//   temporary directory and compares with the committed files)
import { build } from "esbuild";
import { join } from "node:path";

const outdir = process.argv[2] ?? "../static";

await build({
  entryPoints: ["src/entry.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "eof",
  outfile: join(outdir, "pki.bundle.js"),
});
