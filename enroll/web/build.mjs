// Bundles src/ into ../static/pki.bundle.js (committed: the Go binary
// embeds it, so running devicegate needs no Node).
import { build } from "esbuild";

await build({
  entryPoints: ["src/entry.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "eof",
  outfile: "../static/pki.bundle.js",
});
