#!/usr/bin/env bash
# Runs ../shared/peerbench (direct Go TLS, nginx, HAProxy, Caddy) with the
# devicegate proxy as an extra target in the same run. devicegate protects
# the whole upstream as a high-risk path (full policy check on every
# request, header binding), with client certificates it issued itself.
#   bash bench/peerbench.sh            (env: DURATION, CONCURRENCY, PEERS as in peerbench)
#   REVOKED=1000000 bash bench/peerbench.sh   (first adds that many revoked devices to the store)
#   SERVER_CERT=internal bash bench/peerbench.sh   (the proxy serves its own CA's chain, see below)
# The proxy serves the same server certificate as every other target
# (peerbench's server.pem, signed directly by its CA), so each client pays
# the same to verify it; the internal chain (root -> server intermediate ->
# leaf) costs the client one more signature check per full handshake.
# At the end it prints the proxy's peak and current RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
PB=$(cd "${PEERBENCH:-../shared/peerbench}" && pwd)
W=$(mktemp -d /tmp/dg-peerbench.XXXXXX)
dg="$W/devicegate"
cfg="$W/devicegate.yaml"
go build -o "$dg" ./cmd/devicegate

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/hmac.key"
chmod 600 "$W/hmac.key"
printf '%s\n' \
  "data_dir: $W/data" \
  "ca:" \
  "  listen: 127.0.0.1:18449" \
  "proxy:" \
  "  listen: 127.0.0.1:18447" \
  "  admin_listen: 127.0.0.1:18448" \
  "  pprof: ${PPROF:-false}" \
  "  upstreams:" \
  "    - name: peerbench" \
  "      url: http://127.0.0.1:18080" \
  "      hosts: [127.0.0.1, localhost]" \
  "      binding: {mode: header, hmac_key_file: $W/hmac.key}" \
  "      permissions:" \
  "        - {path: /, point: orders.sold}" \
  "portal:" \
  "  listen: 127.0.0.1:18450" \
  "log:" \
  "  level: warn" >"$cfg"

"$dg" ca --config "$cfg" init >/dev/null
"$dg" admin --config "$cfg" store add bench >/dev/null
"$dg" admin --config "$cfg" sub add bench:staff --role customer-service >/dev/null
"$dg" admin --config "$cfg" sub phone bench:staff >/dev/null
"$dg" admin --config "$cfg" sub protect bench:staff --devices 2 >/dev/null

if [ "${REVOKED:-0}" -gt 0 ]; then
  go run ./bench/seedrevoked -db "$W/data/devicegate.db" -sub bench:staff -n "$REVOKED"
fi

"$dg" serve --config "$cfg" >"$W/ca.log" 2>&1 &
ca_pid=$!
PBW=${PEERBENCH_WORK:-/tmp/peerbench}
server_ca="$W/data/ca/root.crt"
cp "$cfg" "$W/proxy.yaml"
if [ "${SERVER_CERT:-shared}" = shared ]; then
  [ -f "$PBW/certs/server.pem" ] || bash "$PB/run.sh" certs
  printf '%s\n' "tls:" "  cert_file: $PBW/certs/server.pem" "  key_file: $PBW/certs/server.key" >>"$W/proxy.yaml"
  server_ca="$PBW/certs/ca.pem"
fi
"$dg" proxy --config "$W/proxy.yaml" >"$W/proxy.log" 2>&1 &
proxy_pid=$!
trap 'kill $ca_pid $proxy_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/18449) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/18447) 2>/dev/null && break
  sleep 0.1
done

echo 'peerbench-p12-password' >"$W/p12pass"
mkdir -p "$W/certs"
cp "$server_ca" "$W/certs/ca.pem"
for kind in good revoked; do
  code=$("$dg" admin --config "$cfg" sub ticket bench:staff)
  "$dg" enroll --url https://localhost:18449 --code "$code" --out "$W/$kind" --label "$kind" \
    --root "$W/data/ca/root.crt" --p12-password-file "$W/p12pass" >/dev/null
  cp "$W/$kind/chain.pem" "$W/certs/client-$kind.pem"
  cp "$W/$kind/key.pem" "$W/certs/client-$kind.key"
done
serial=$(openssl x509 -in "$W/revoked/cert.pem" -noout -serial | cut -d= -f2)

EXTRA_TARGET_URL=https://127.0.0.1:18447/ EXTRA_TARGET_NAME=devicegate EXTRA_TARGET_PIDS=$proxy_pid \
EXTRA_TARGET_CERTS="$W/certs" EXTRA_TARGET_SWAP="$dg admin --config $cfg device revoke $serial" \
  bash "$PB/run.sh"
echo "devicegate proxy with ${REVOKED:-0} revoked devices in the store: $(grep -E 'VmHWM|VmRSS' /proc/$proxy_pid/status | tr -s ' \t' ' ' | paste -sd ' ')"
echo "devicegate work dir: $W"
