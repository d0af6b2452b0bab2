package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// runBackoffice runs only the demo back-office app (plain HTTP), the
// upstream the proxies front in docker-compose.yml. Its users and their
// passwords come from a file (a secret), one "store:name password" a line.
func backofficeFlags(fs *flag.FlagSet) commandRun {
	addr := fs.String("listen", "127.0.0.1:8081", "`ADDRESS` (plain HTTP: keep it on a private network)")
	usersFile := fs.String("users-file", "", "`FILE` with one \"store:name password\" a line (required)")
	logLevel := fs.String("log-level", "info", "log level `L`: debug, info, warn or error")
	return func(ctx context.Context, _ []string, env *cliEnv) error {
		return runBackoffice(ctx, *addr, *usersFile, *logLevel, env)
	}
}

func runBackoffice(ctx context.Context, addr, usersFile, logLevel string, env *cliEnv) error {
	if usersFile == "" {
		return errors.New("--users-file is required")
	}
	users, err := readBackofficeUsers(usersFile)
	if err != nil {
		return err
	}
	log := newLogger(env, logLevel, "text")
	srv, err := startBackoffice(addr, users, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "backoffice_url: %s\n", srv.URL())
	var r role
	r.serve(srv.serve)
	return r.run(ctx)
}

// readBackofficeUsers parses the users file; a malformed line is an error
// naming its number, never its content (it holds a password).
func readBackofficeUsers(path string) ([]demoUser, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var users []demoUser
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, password, ok := strings.Cut(line, " ")
		password = strings.TrimSpace(password)
		if !ok || !strings.Contains(name, ":") || password == "" {
			return nil, fmt.Errorf(`%s line %d: want "store:name password"`, path, n)
		}
		users = append(users, demoUser{Name: name, Password: password})
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s: no user", path)
	}
	return users, sc.Err()
}
