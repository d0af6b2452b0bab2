package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/devicegate/devicegate/internal/config"
)

func checkConfigFlags(*flag.FlagSet) commandRun { return runCheckConfig }

// runCheckConfig validates config files and prints every problem found.
func runCheckConfig(_ context.Context, args []string, env *cliEnv) error {
	failed := 0
	for _, path := range args {
		err := config.CheckFile(path)
		if err == nil {
			fmt.Fprintf(env.stdout, "%s: ok\n", path)
			continue
		}
		failed++
		for _, e := range flattenErrors(err) {
			fmt.Fprintf(env.stderr, "%s: %v\n", path, e)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d file(s) have problems", failed, len(args))
	}
	return nil
}

// flattenErrors unpacks errors.Join trees into one error per line.
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}
