.PHONY: test run bench fuzz

# The README's two commands: `go run ./cmd/devicegate demo` and `make test`.
test:
	bash scripts/test.sh

run:
	go run ./cmd/devicegate demo

bench:
	go test -run '^$$' -bench . -benchtime 2s ./bench/

# Every fuzz target for a minute each (make test runs each briefly).
fuzz:
	FUZZTIME=60s bash scripts/fuzz.sh
