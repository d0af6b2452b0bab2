// Command results turns the output of `make bench` (go test -bench lines,
// peerbench RESULT lines, the figures the multi-node, failover and
// partition tests log, and the runner's DATE lines) into the markdown
// table of bench/results.md:
//
//	go run ./bench/cmd/results -o bench/results.md bench-output.txt...
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	out := flag.String("o", "", "write the markdown here (default: standard output)")
	notes := flag.String("notes", "", "a file whose text goes below the table")
	flag.Parse()
	if err := run(*out, *notes, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "results:", err)
		os.Exit(1)
	}
}

func run(out, notes string, inputs []string) error {
	var readers []io.Reader
	for _, name := range inputs {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		readers = append(readers, f)
	}
	if len(readers) == 0 {
		readers = append(readers, os.Stdin)
	}
	r, err := Parse(io.MultiReader(readers...))
	if err != nil {
		return err
	}
	rows := Rows(r)
	if len(rows) == 0 {
		return fmt.Errorf("no figure found in the input")
	}
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	b.WriteString("Written by `make bench` (bench/run.sh, then bench/cmd/results): every figure beside its reference measured in\n")
	b.WriteString("the same run, or its goal. 2 CPU cores shared with whatever else runs on the machine: the load average\n")
	b.WriteString("is given per figure; ratios are what to compare, absolute rates follow the CPU share. How each figure\n")
	b.WriteString("is made, and earlier figures: bench/README.md.\n\n")
	b.WriteString(Markdown(rows))
	if notes != "" {
		text, err := os.ReadFile(notes)
		if err != nil {
			return err
		}
		b.WriteString("\n" + string(text))
	}
	if out == "" {
		_, err = os.Stdout.WriteString(b.String())
		return err
	}
	return os.WriteFile(out, []byte(b.String()), 0o644)
}
