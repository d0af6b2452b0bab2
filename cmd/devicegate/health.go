package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// healthURLsEnv and healthRootEnv are what the image's HEALTHCHECK runs
// `devicegate health` with: each role's container sets the URLs of its own
// listeners (docker-compose.yml), as the image cannot know the role.
const (
	healthURLsEnv = "DEVICEGATE_HEALTH_URLS"
	healthRootEnv = "DEVICEGATE_HEALTH_ROOT"
)

// runHealth GETs every URL and succeeds only if each answers 2xx in time.
// https is verified against --root (the CA's root.pem: every listener's
// certificate chains to it) or, without it, the system's roots; a
// certificate that does not verify is unhealthy, never skipped.
func healthFlags(fs *flag.FlagSet) commandRun {
	root := fs.String("root", "", "`FILE` with PEM root(s) verifying https URLs (default $"+healthRootEnv+")")
	timeout := fs.Duration("timeout", 4*time.Second, "`D` for all URLs together")
	return func(ctx context.Context, urls []string, env *cliEnv) error {
		if *root == "" {
			*root = os.Getenv(healthRootEnv)
		}
		return runHealth(ctx, urls, *root, *timeout, env)
	}
}

func runHealth(ctx context.Context, urls []string, root string, timeout time.Duration, env *cliEnv) error {
	if len(urls) == 0 {
		urls = strings.Fields(os.Getenv(healthURLsEnv))
	}
	if len(urls) == 0 {
		return errors.New("usage: health [--root FILE] URL... (or $" + healthURLsEnv + ")")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if root != "" {
		pool, err := poolFromFile(root)
		if err != nil {
			return fmt.Errorf("--root: %w", err)
		}
		tc.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	var failed []error
	for _, u := range urls {
		if err := checkHealth(ctx, client, u); err != nil {
			failed = append(failed, err)
			continue
		}
		fmt.Fprintf(env.stdout, "%s: ok\n", u)
	}
	return errors.Join(failed...)
}

// checkHealth is one GET: a 2xx answer, read to the end, is healthy.
func checkHealth(ctx context.Context, client *http.Client, u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("%s: not an http(s) URL", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}
