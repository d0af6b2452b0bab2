#!/usr/bin/env bash
# Rebuilds the browser bundle from enroll/web (exact versions from
# package-lock.json) into a temporary directory and fails when it differs
# from the committed files in enroll/static, or when enroll/static holds a
# bundle file the build no longer makes. Then runs the bundle's round trip
# in Node (key, CSR and PKCS#12 checked with openssl and pk12util).
set -euo pipefail
cd "$(dirname "$0")/../enroll/web"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

npm ci --no-audit --no-fund --loglevel=error
node build.mjs "$out"
status=0
for f in "$out"/*; do
  if ! cmp -s "$f" "../static/$(basename "$f")"; then
    echo "enroll/static/$(basename "$f") differs from a fresh build of enroll/web: run (cd enroll/web && npm ci && node build.mjs) and commit it" >&2
    status=1
  fi
done
for f in ../static/*.bundle.*; do
  if [ ! -e "$out/$(basename "$f")" ]; then
    echo "enroll/static/$(basename "$f") is no longer built from enroll/web: remove it" >&2
    status=1
  fi
done
[ "$status" = 0 ] || exit 1
echo "bundle identical: $(cd "$out" && ls | tr '\n' ' ')"
node --experimental-vm-modules test/roundtrip.mjs
