#!/usr/bin/env bash
# The project's test command (README: `make test`). Installs the real
# components the tests need when they are missing (as root, from Debian's
# packages) and runs the whole suite. With CI=true a missing component is a
# failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

need_pkgs=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_pkgs+=(postgresql)
command -v openssl >/dev/null || need_pkgs+=(openssl)
# The README walkthrough (scripts/readme_walkthrough.sh) pastes its curl commands.
command -v curl >/dev/null || need_pkgs+=(curl)
# TestMonitoringConfigs checks the alert rules with promtool (Debian's
# prometheus package, ~19 MB; its service is not used).
command -v promtool >/dev/null || need_pkgs+=(prometheus)
# The container test (TestContainerFlow) builds and runs the image with
# podman; runc, as crun fails on some cgroup layouts.
command -v podman >/dev/null && command -v runc >/dev/null || need_pkgs+=(podman runc)
# The browser end-to-end tests (e2e/, a Go module of its own so that the
# browser drivers and Pebble stay out of the product's module graph, and so
# that `go test ./...` at the top never touches the machine's /etc):
# Debian's Chromium and Firefox ESR,
# and NSS tools to import the downloaded PKCS#12 into the browser profile.
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
# Firefox ESR and WebKit (Safari's engine family: WebKitGTK's WebDriver and
# MiniBrowser on a virtual X display) are installed with their recommended
# packages (Mesa, media libraries), as they were tested.
full_pkgs=()
[ -x /usr/bin/firefox-esr ] || full_pkgs+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || full_pkgs+=(webkit2gtk-driver)
[ -x /usr/bin/xvfb-run ] && command -v xauth >/dev/null || full_pkgs+=(xvfb xauth)
command -v pk12util >/dev/null && command -v certutil >/dev/null || need_pkgs+=(libnss3-tools)
# `devicegate trust install` is tested with the real certutil and
# update-ca-certificates (on temporary directories).
command -v update-ca-certificates >/dev/null || need_pkgs+=(ca-certificates)
# The committed browser bundle (enroll/static) is rebuilt from enroll/web
# with Node.js and npm (the packages from the npm registry, pinned in
# package-lock.json) and must come out byte for byte the same.
command -v node >/dev/null || need_pkgs+=(nodejs)
command -v npm >/dev/null || need_pkgs+=(npm)

if [ $((${#need_pkgs[@]} + ${#full_pkgs[@]})) -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need_pkgs[*]} ${full_pkgs[*]}"
    apt-get update -qq
    if [ ${#need_pkgs[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    fi
    if [ ${#full_pkgs[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${full_pkgs[@]}" >/dev/null
    fi
    # Debian's prometheus service would hold port 9090 where systemd runs.
    command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null && systemctl disable --now prometheus || true
    # Debian starts a cluster on install; the tests start their own.
    command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | while read -r v c; do pg_ctlcluster "$v" "$c" stop || true; done
  else
    echo "missing: ${need_pkgs[*]} ${full_pkgs[*]} (run as root to install them; with CI=true the tests that need them fail)" >&2
  fi
fi

if [ "${CI:-}" = true ]; then
  export DEVICEGATE_REQUIRE_POSTGRES=1
  export DEVICEGATE_REQUIRE_PODMAN=1
  # The partition tests put a proxy in a network namespace (ip netns, as root).
  export DEVICEGATE_REQUIRE_NETNS=1
  export DEVICEGATE_REQUIRE_TRUSTTOOLS=1
  export DEVICEGATE_REQUIRE_PROMTOOL=1
fi

echo "== JS bundle (rebuilt from enroll/web, compared with the committed enroll/static files)"
if command -v node >/dev/null && command -v npm >/dev/null; then
  bash scripts/jsbundle.sh
elif [ "${CI:-}" = true ]; then
  echo "node and npm are required to check the committed JS bundle (CI=true)" >&2
  exit 1
else
  echo "node or npm is missing: the JS bundle check is skipped (it fails instead under CI=true)" >&2
fi
echo "== go mod tidy (both modules)"
go mod tidy -diff
(cd e2e && go mod tidy -diff)
echo "== go vet"
go vet ./...
(cd e2e && go vet ./...)
echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
(cd e2e && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)
echo "== go test"
go test -count=1 -timeout 20m ./... 2>&1 | tee /tmp/devicegate-test.log
echo "== README walkthrough (its CLI blocks, pasted as written, against a real demo)"
bash scripts/readme_walkthrough.sh
echo "== go test (e2e module: real browsers, Pebble; restores what it changes under /etc)"
(cd e2e && go test -count=1 -timeout 20m ./...) 2>&1 | tee -a /tmp/devicegate-test.log
echo "== fuzz (every target briefly; FUZZTIME=60s bash scripts/fuzz.sh for a real run)"
bash scripts/fuzz.sh
