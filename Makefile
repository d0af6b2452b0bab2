.PHONY: test run bench fuzz

# The README's two commands: `go run ./cmd/devicegate demo` and `make test`.
test:
	bash scripts/test.sh

run:
	go run ./cmd/devicegate demo

# Every benchmark of the project into one table, bench/results.md (see bench/run.sh for the knobs).
bench:
	bash bench/run.sh

# Every fuzz target for a minute each (make test runs each briefly).
fuzz:
	FUZZTIME=60s bash scripts/fuzz.sh
