#!/usr/bin/env bash
# `make bench`: runs every benchmark of the project and writes one table,
# bench/results.md (bench/cmd/results turns the output into markdown).
#   make bench                                   (everything, as below)
#   STEPS="issuance proxybench" make bench       (some steps only: issuance quota proxybench peerbench nodes)
#   BINDINGS=header ROUNDS=3 make bench          (peerbench: which bindings, how many interleaved rounds)
#   PARTITION_REVOCATIONS=1000 make bench        (the partition test's revocations; the issue's figure is 100,000)
#   RESULTS_EXTRA=file make bench                (more output to put in the table, e.g. a separate long run)
# Each step is preceded by a DATE line with the load average, so every
# figure in the table says when it was measured and how busy the machine
# was. The raw output stays in $OUT (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
OUT=${OUT:-$(mktemp -d /tmp/dg-bench.XXXXXX)}
mkdir -p "$OUT"
raw="$OUT/raw.txt"
: >"$raw"
steps=${STEPS:-issuance quota proxybench peerbench nodes}

failed=()
fail() { echo "STEP FAILED: $*" | tee -a "$raw"; failed+=("$*"); }
stamp() { echo "DATE $(date -u +%Y-%m-%dT%H:%MZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$raw"; }
# bench PKG ARGS...: one `go test -bench` run, its output kept.
bench() { stamp; go test -run '^$' "$@" 2>&1 | tee -a "$raw" || fail "go test $*"; }

for step in $steps; do
  case $step in
  issuance)
    bench -bench 'IssueVsBare(Postgres)?$' -benchtime 400x -count 1 ./bench/
    bench -bench 'IssueVsBarePostgresRemote$' -benchtime 200x -count 1 ./bench/
    bench -bench 'BareSign|IssueInProcess|IssueHTTPS|IssueStoreOnly' -benchtime 2s ./bench/ ;;
  quota)
    bench -bench 'QuotaRace' -benchtime 1x ./bench/ ;;
  proxybench)
    bench -bench 'PolicyCheckRevoked' -benchtime 2s ./bench/
    bench -bench 'IdleConnMemory' -benchtime 1x -count 3 ./bench/
    bench -bench . -benchmem -benchtime 1s ./proxy/ ./proxy/internal/h1/ ;;
  peerbench)
    for b in ${BINDINGS:-header jwt whoami}; do
      stamp
      BINDING=$b ROUNDS=${ROUNDS:-3} bash bench/peerbench.sh 2>&1 | tee -a "$raw" || fail "peerbench $b"
    done ;;
  nodes)
    # Revocation propagation, quota race across 2 CA nodes, failover and
    # partition catch-up: figures the tests log in fixed sentences.
    stamp
    DEVICEGATE_MULTINODE_REVOCATIONS=${MULTINODE_REVOCATIONS:-1000} DEVICEGATE_MULTINODE_ROUNDS=${MULTINODE_ROUNDS:-1000} \
      DEVICEGATE_PARTITION_REVOCATIONS=${PARTITION_REVOCATIONS:-100000} \
      go test -count=1 -v -timeout 90m -run 'TestMultiNode$|TestFailoverPromoteStandby$|TestPartitionProxyFromDatabase$' ./cmd/devicegate/ 2>&1 |
      tee -a "$raw" "$OUT/nodes.txt" | grep -E '^(=== RUN|--- |(ok|FAIL|PASS)\b)|_test.go:[0-9]+: ' || true
    grep -qE '^(--- FAIL|FAIL)' "$OUT/nodes.txt" && fail "cmd/devicegate tests" || true ;;
  *) echo "unknown step $step (issuance quota proxybench peerbench nodes)" >&2; exit 2 ;;
  esac
done

extra=()
[ -n "${RESULTS_EXTRA:-}" ] && extra=("$RESULTS_EXTRA")
notes=()
[ -f bench/results-notes.md ] && notes=(-notes bench/results-notes.md)
go run ./bench/cmd/results -o bench/results.md "${notes[@]}" "$raw" "${extra[@]}"
echo "bench/results.md written; raw output in $raw"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
