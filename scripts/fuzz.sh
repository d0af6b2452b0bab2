#!/usr/bin/env bash
# Runs every native Go fuzz target of the repository for FUZZTIME each
# (default 200x, i.e. 200 inputs after the seeds: the brief run of `make
# test`, counted rather than timed so a slow machine cannot cut it off
# during its baseline; e.g. FUZZTIME=60s for a real
# run) and prints executions and findings per target. A crash fails the
# run; the failing input is left in the package's testdata/fuzz/ by
# `go test`, where it becomes a regression seed once committed.
#
# SAVE_CORPUS=N copies up to N of the inputs each target's run found
# interesting (from Go's fuzz cache) into testdata/fuzz/<Target>/, so a
# longer run's corpus can be committed and is replayed by every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-200x}
save=${SAVE_CORPUS:-0}
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)
failed=0
while IFS=: read -r file name; do
  dir=$(dirname "$file")
  pkg=$(cd "$dir" && go list .)
  out=$(cd "$dir" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" . 2>&1) || {
    echo "FAIL $pkg $name"; echo "$out" | tail -20; failed=1; continue; }
  execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | grep -o '[0-9]*' || echo 0)
  echo "ok   ${pkg#"$module"/} $name: ${execs:-0} execs in $fuzztime, no crash"
  if [ "$save" -gt 0 ] && [ -d "$cache/$pkg/$name" ]; then
    mkdir -p "$dir/testdata/fuzz/$name"
    ls -t "$cache/$pkg/$name" | head -n "$save" | while read -r f; do
      cp -n "$cache/$pkg/$name/$f" "$dir/testdata/fuzz/$name/$f"
    done
  fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's/func //' | sort)
exit $failed
