#!/usr/bin/env bash
# Runs the README's CLI walkthrough as a reader pastes it: the code blocks
# marked <!-- readme-walkthrough... --> in README.md, in order, in an empty
# temporary directory, against a real `devicegate demo` started there.
# Only two things differ from pasting: `dg` runs a binary built once (not
# `go run` per command), and the demo listens on ports the kernel picks (so
# a test run never collides with a demo on 8443/9443), substituted for
# https://localhost:8443 and :9443 in the blocks. Then it checks what the
# walkthrough promises. Called by scripts/test.sh (make test).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ]; then kill -INT "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "readme walkthrough: $*" >&2; exit 1; }

(cd "$repo" && go build -o "$work/devicegate" ./cmd/devicegate)
cd "$work"
cat > demo.yaml <<'EOF'
data_dir: devicegate-data
ca:
  listen: 127.0.0.1:0
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
portal:
  listen: 127.0.0.1:0
demo:
  backoffice_listen: 127.0.0.1:0
EOF
./devicegate demo --config demo.yaml >demo.log 2>&1 &
demo_pid=$!
for _ in $(seq 600); do
  [ -s devicegate-data/demo.json ] && break
  kill -0 "$demo_pid" 2>/dev/null || { cat demo.log >&2; fail "the demo exited"; }
  sleep 0.1
done
[ -s devicegate-data/demo.json ] || fail "the demo wrote no demo.json"
json() { sed -n "s|.*\"$1\": \"\(.*\)\".*|\1|p" devicegate-data/demo.json | head -n 1; }
ca_url=$(json ca_url)
proxy_url=$(json proxy_url)

# The marked blocks, as written.
awk '/^<!-- readme-walkthrough/ {want = 1; next}
     want && /^```sh$/ {inside = 1; next}
     inside && /^```$/ {inside = 0; want = 0; next}
     inside {print}' "$repo/README.md" >walkthrough.sh
[ "$(grep -c '^dg() ' walkthrough.sh)" = 1 ] || fail "README.md: no marked block defines dg()"
grep -q 'localhost:9443' walkthrough.sh || fail "README.md: the marked blocks never go through the proxy"
sed -i -e "s|^dg() .*|dg() { \"$work/devicegate\" \"\$@\"; }|" \
  -e "s|https://localhost:8443|$ca_url|g" -e "s|https://localhost:9443|$proxy_url|g" walkthrough.sh

if ! bash -euo pipefail -x walkthrough.sh >walkthrough.out 2>&1; then
  cat walkthrough.out >&2
  fail "a step failed (the last command above)"
fi

# What the walkthrough promises.
want() { grep -qF -- "$1" walkthrough.out || { cat walkthrough.out >&2; fail "no \"$1\" in the output"; }; }
want "Installed (1/2)"
want "demo-store:dave is departed"
want "stay revoked"
want "demo-store:alice"       # /orders/sold through the proxy, as alice
[ -s walkthrough/dave-pc/device.p12 ] || fail "no walkthrough/dave-pc/device.p12"
[ "$(stat -c %a walkthrough/dave-pc/key.pem)" = 600 ] || fail "key.pem is not 0600"
# "The CRL as servers read it" and the file copy list the same revoked
# serials (README: their CRL numbers differ, each process signs its own):
# dave's revoked certificate is in both, over HTTP once the demo's CA has
# caught up with the CLI's revocation (README: within a second).
serial=$(openssl x509 -in walkthrough/dave-pc/cert.pem -noout -serial | cut -d= -f2)
lists() { openssl crl "$@" -noout -text | grep -qi "serial number: *$serial"; }
lists -in devicegate-data/ca/crl.pem || fail "crl.pem does not list dave's revoked certificate $serial"
for _ in $(seq 50); do
  curl -sS --cacert devicegate-data/ca/root.crt "$ca_url/crl" -o walkthrough/crl.der
  lists -inform DER -in walkthrough/crl.der && break
  sleep 0.1
done
lists -inform DER -in walkthrough/crl.der || fail "the CRL over HTTP does not list $serial after 5 s"
# Everything the walkthrough wrote is in folders .gitignore covers.
for f in $(ls -A | grep -vxF -e demo.yaml -e demo.log -e devicegate -e walkthrough.sh -e walkthrough.out); do
  [ -d "$f" ] && f="$f/"
  (cd "$repo" && git check-ignore -q "$f") || fail "$f is not covered by .gitignore"
done
echo "readme walkthrough: ok ($(grep -c '^+ ' walkthrough.out) commands)"
