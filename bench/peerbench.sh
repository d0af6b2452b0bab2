#!/usr/bin/env bash
# Runs ../shared/peerbench (direct Go TLS, nginx, HAProxy, Caddy) with the
# devicegate proxy as an extra target in the same run. devicegate protects
# the whole upstream as a high-risk path (full policy check on every
# request, header binding), with client certificates it issued itself.
#   bash bench/peerbench.sh            (env: DURATION, CONCURRENCY, PEERS as in peerbench)
#   REVOKED=1000000 bash bench/peerbench.sh   (first adds that many revoked devices to the store)
#   ROUNDS=6 bash bench/peerbench.sh   (interleaved rounds against direct and nginx, see interleaved_rounds)
#   SERVER_CERT=internal bash bench/peerbench.sh   (the proxy serves its own CA's chain, see below)
#   BINDING=jwt|whoami ROUNDS=N bash bench/peerbench.sh   (session binding of the upstream: header (default),
#       jwt (an ES256 app session in a cookie) or whoami (the app asked, answer cached 30 s); the load tool
#       sends the session cookie to every target)
#   DG_REV=aa469af ROUNDS=N bash bench/peerbench.sh   (measure the proxy built from another commit: before/after)
# The proxy serves the same server certificate as every other target
# (peerbench's server.pem, signed directly by its CA), so each client pays
# the same to verify it; the internal chain (root -> server intermediate ->
# leaf) costs the client one more signature check per full handshake.
# At the end it prints the proxy's peak and current RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

# ROUNDS=N: instead of peerbench's one pass per target, N rounds of direct,
# nginx, HAProxy and devicegate back to back (DURATION each, default 4s),
# keep-alive then full handshakes, with peerbench's tools, certificates and
# nginx/HAProxy configs: a drift of the machine's speed during the run then
# hits all four alike. Prints each round's ratios and their medians.
interleaved_rounds() {
  local B=$PBW/bin C=$PBW/certs R=$PBW/run/nginx d=${DURATION:-4s} r mode nginx_pids
  [ -x "$B/load" ] && [ -x "$B/upstream" ] || bash "$PB/run.sh" certs
  mkdir -p "$R"
  cp "$C/crl-empty.pem" "$R/crl.pem"
  sed -e "s|@CERTS@|$C|g; s|@RUN@|$R|g; s|@PORT@|18444|g; s|@UP@|127.0.0.1:18080|g" "$PB/conf/nginx.conf" >"$R/nginx.conf"
  "$B/upstream" -http 127.0.0.1:18080 -https 127.0.0.1:18443 -cert "$C/server.pem" -key "$C/server.key" \
    -ca "$C/ca.pem" -crl "$C/crl-empty.pem" >"$W/upstream.log" 2>&1 &
  up_pid=$!
  /usr/sbin/nginx -e "$R/error.log" -p "$R" -c "$R/nginx.conf" >"$W/nginx.log" 2>&1 &
  nginx_pid=$!
  local H=$PBW/run/haproxy
  mkdir -p "$H"
  cat "$C/server.pem" "$C/server.key" >"$H/server-bundle.pem"
  cp "$C/crl-empty.pem" "$H/crl.pem"
  sed -e "s|@CERTS@|$C|g; s|@RUN@|$H|g; s|@PORT@|18445|g; s|@UP@|127.0.0.1:18080|g" "$PB/conf/haproxy.cfg" >"$H/haproxy.cfg"
  haproxy -db -f "$H/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
  haproxy_pid=$!
  trap 'kill $ca_pid $proxy_pid $up_pid $nginx_pid $haproxy_pid $app_pid 2>/dev/null || true' EXIT
  sleep 1
  local nginx_pids="$nginx_pid$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$nginx_pid" '$4 == p {printf ",%s", $1}')"
  # Every target gets the same requests, the session cookie included.
  for r in $(seq "$ROUNDS"); do
    for mode in keepalive handshake; do
      "$B/load" -ca "$C/ca.pem" -cert "$C/client-good.pem" -key "$C/client-good.key" -name direct -url https://127.0.0.1:18443/ -mode $mode -d "$d" -pids "$up_pid" -cookie "$cookie"
      "$B/load" -ca "$C/ca.pem" -cert "$C/client-good.pem" -key "$C/client-good.key" -name nginx -url https://127.0.0.1:18444/ -mode $mode -d "$d" -pids "$nginx_pids" -cookie "$cookie"
      "$B/load" -ca "$C/ca.pem" -cert "$C/client-good.pem" -key "$C/client-good.key" -name haproxy -url https://127.0.0.1:18445/ -mode $mode -d "$d" -pids "$haproxy_pid" -cookie "$cookie"
      "$B/load" -ca "$W/certs/ca.pem" -cert "$W/certs/client-good.pem" -key "$W/certs/client-good.key" -name devicegate -url https://127.0.0.1:18447/ -mode $mode -d "$d" -pids "$proxy_pid" -cookie "$cookie"
    done
  done | tee "$W/rounds.txt"
  awk '/^RESULT/ { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      k = f["mode"]; v[k, f["name"]] = f["rps"]; c[k, f["name"]] = f["cpu_us_per_req"]
      if (f["name"] == "devicegate") { n[k]++
        ka[k, n[k]] = f["rps"] / v[k, "nginx"]; hp[k, n[k]] = f["rps"] / v[k, "haproxy"]; hd[k, n[k]] = f["rps"] / v[k, "direct"]; ng[k, n[k]] = v[k, "nginx"] / v[k, "direct"]
        printf "round %d %-9s devicegate/nginx %.2f  devicegate/haproxy %.2f  devicegate/direct %.2f  nginx/direct %.2f  cpu us/req devicegate %s nginx %s haproxy %s\n", n[k], k, ka[k, n[k]], hp[k, n[k]], hd[k, n[k]], ng[k, n[k]], f["cpu_us_per_req"], c[k, "nginx"], c[k, "haproxy"] } }
    function median(a, k, m,   i, j, t, x) { for (i = 1; i <= m; i++) x[i] = a[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
      return m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2 }
    END { for (k in n) printf "median over %d rounds, %-9s: devicegate/nginx %.2f  devicegate/haproxy %.2f  devicegate/direct %.2f  nginx/direct %.2f\n", n[k], k, median(ka, k, n[k]), median(hp, k, n[k]), median(hd, k, n[k]), median(ng, k, n[k]) }' "$W/rounds.txt"
}
PB=$(cd "${PEERBENCH:-../shared/peerbench}" && pwd)
W=$(mktemp -d /tmp/dg-peerbench.XXXXXX)
dg="$W/devicegate"
cfg="$W/devicegate.yaml"
if [ -n "${DG_REV:-}" ]; then
  git worktree add -q --detach "$W/src" "$DG_REV"
  (cd "$W/src" && go build -o "$dg" ./cmd/devicegate)
  git worktree remove --force "$W/src"
else
  go build -o "$dg" ./cmd/devicegate
fi
echo "devicegate $(git rev-parse --short "${DG_REV:-HEAD}"), binding ${BINDING:-header}"

# The session binding of the upstream, and the cookie every load client sends.
cookie="" app_pid=""
case "${BINDING:-header}" in
header) binding="{mode: header, hmac_key_file: $W/hmac.key}" ;;
jwt)
  go build -o "$W/benchapp" ./bench/benchapp
  cookie="bo_jwt=$("$W/benchapp" -jwt "$W" -user bench:staff)"
  binding="{mode: jwt, jwt_key_file: $W/app.pub, jwt_cookie: bo_jwt}" ;;
whoami)
  go build -o "$W/benchapp" ./bench/benchapp
  "$W/benchapp" -whoami 127.0.0.1:18451 -user bench:staff >"$W/benchapp.log" 2>&1 &
  app_pid=$!
  cookie="bo_session=peerbench-session-1"
  binding="{mode: whoami, whoami_url: \"http://127.0.0.1:18451/whoami\", session_cookie: bo_session}" ;;
*) echo "BINDING must be header, jwt or whoami" >&2; exit 2 ;;
esac

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
  "      binding: $binding" \
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
trap 'kill $ca_pid $proxy_pid $app_pid 2>/dev/null || true' EXIT
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
  # The leaf alone, as peerbench's own clients present (the device
  # intermediate is the proxy's trust anchor; sending it costs each
  # handshake a second certificate to parse).
  cp "$W/$kind/cert.pem" "$W/certs/client-$kind.pem"
  cp "$W/$kind/key.pem" "$W/certs/client-$kind.key"
done
serial=$(openssl x509 -in "$W/revoked/cert.pem" -noout -serial | cut -d= -f2)

if [ "${ROUNDS:-0}" -gt 0 ]; then
  interleaved_rounds
else
  EXTRA_TARGET_URL=https://127.0.0.1:18447/ EXTRA_TARGET_NAME=devicegate EXTRA_TARGET_PIDS=$proxy_pid \
  EXTRA_TARGET_CERTS="$W/certs" EXTRA_TARGET_SWAP="$dg admin --config $cfg device revoke $serial" \
    bash "$PB/run.sh"
fi
echo "devicegate proxy with ${REVOKED:-0} revoked devices in the store: $(grep -E 'VmHWM|VmRSS' /proc/$proxy_pid/status | tr -s ' \t' ' ' | paste -sd ' ')"
echo "devicegate work dir: $W"
