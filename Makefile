.PHONY: test run bench fuzz

# The README's two commands: `go run ./cmd/devicegate demo` and `make test`.
test:
	bash scripts/test.sh

run:
	go run ./cmd/devicegate demo

bench:
	go test -run '^$$' -bench . -benchtime 2s ./bench/
