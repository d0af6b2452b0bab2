package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/devicegate/devicegate/internal/testpki"
)

// The monitoring configs of the compose setup (docs/operations.md,
// "Monitoring").
const (
	dashboardFile  = "configs/compose/grafana/dashboards/devicegate.json"
	datasourceFile = "configs/compose/grafana/provisioning/datasources/prometheus.yaml"
	alertsFile     = "configs/compose/alerts.yml"
	operationsDoc  = "docs/operations.md"
)

// TestMonitoringConfigs checks the Grafana dashboard and the Prometheus
// alert rules against the real roles: every metric they query is exported
// by a running `devicegate serve` (CA node), store-backed `devicegate
// proxy` or edge proxy fed by the CA, scraped from their admin listeners.
// Every panel queries the data source Grafana is provisioned with; every
// alert has a `for:` duration, a severity, a summary and a description,
// and a runbook line in docs/operations.md; promtool (Debian's prometheus
// package, installed by scripts/test.sh) accepts the rules and runs their
// unit tests (testdata/alerts_test.yml: each alert fires on its series).
func TestMonitoringConfigs(t *testing.T) {
	queries := dashboardQueries(t)
	rules := alertRules(t)
	for _, r := range rules {
		queries["alert "+r.Alert] = r.Expr
	}
	checkAlertRules(t, rules)
	checkAlertUnitTests(t, rules)
	checkPromtool(t)

	exported := scrapeRoles(t)
	for where, expr := range queries {
		names, err := promqlMetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v in %q", where, err, expr)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q queries no metric", where, expr)
		}
		for _, name := range names {
			if name == "up" { // Prometheus's own, per target
				continue
			}
			if !exported[name] {
				t.Errorf("%s uses %s, which no running role exports (if it appears only after an event, cause the event in scrapeRoles)", where, name)
			}
		}
	}
}

// dashboardQueries returns the dashboard's queries by panel, checking that
// each panel and query uses the provisioned Prometheus data source.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, datasourceFile))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Datasources []struct {
			Name, UID, Type string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil || len(prov.Datasources) != 1 || prov.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s: %v %+v, want one prometheus data source", datasourceFile, err, prov)
	}
	ds := prov.Datasources[0]

	raw, err = os.ReadFile(filepath.Join(repoRoot, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	type source struct{ Type, UID string }
	var dash struct {
		UID    string
		Panels []struct {
			Type, Title string
			Datasource  *source
			Targets     []struct {
				RefID      string
				Datasource *source
				Expr       string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil || dash.UID == "" {
		t.Fatalf("%s: %v (uid %q)", dashboardFile, err, dash.UID)
	}
	queries := map[string]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, s := range append([]*source{p.Datasource}, func() (out []*source) {
			for _, q := range p.Targets {
				out = append(out, q.Datasource)
			}
			return out
		}()...) {
			if s == nil || s.UID != ds.UID || s.Type != ds.Type {
				t.Errorf("panel %q: data source %+v, want the provisioned %s/%s", p.Title, s, ds.Type, ds.UID)
			}
		}
		for _, q := range p.Targets {
			queries[fmt.Sprintf("panel %q %s", p.Title, q.RefID)] = q.Expr
		}
	}
	return queries
}

type alertRule struct {
	Alert       string
	Expr        string
	For         string
	Labels      map[string]string
	Annotations map[string]string
}

// alertRules reads the rule groups, checking that prometheus.yml loads the
// file from where docker-compose.yml mounts it.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, alertsFile))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string
			Rules []alertRule
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", alertsFile)
	}

	compose, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(compose, &cf); err != nil {
		t.Fatal(err)
	}
	mounted := ""
	for _, v := range cf.Services["prometheus"].Volumes {
		if src, dst, _ := strings.Cut(v, ":"); filepath.Clean(src) == alertsFile {
			mounted, _, _ = strings.Cut(dst, ":")
		}
	}
	promRaw, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(promRaw, &prom); err != nil {
		t.Fatal(err)
	}
	if mounted == "" || !slices.Contains(prom.RuleFiles, mounted) {
		t.Errorf("prometheus.yml rule_files %v does not load %s (mounted at %q by docker-compose.yml)", prom.RuleFiles, alertsFile, mounted)
	}
	return rules
}

// promDuration is Prometheus's duration syntax (no fractions, no sign).
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// checkAlertRules: each alert is named once, waits a `for:` duration
// before firing (no page for a blip), has a severity, a summary and a
// description, and docs/operations.md says what to do about it.
func checkAlertRules(t *testing.T, rules []alertRule) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, operationsDoc))
	if err != nil {
		t.Fatal(err)
	}
	_, monitoring, _ := strings.Cut(string(doc), "\n## Monitoring\n")
	monitoring, _, _ = strings.Cut(monitoring, "\n## ")
	seen := map[string]bool{}
	for _, r := range rules {
		switch {
		case r.Alert == "":
			t.Errorf("a rule without an alert name (recording rules belong elsewhere): %q", r.Expr)
			continue
		case seen[r.Alert]:
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !promDuration.MatchString(r.For) || strings.Trim(r.For, "0msdhwy") == "" {
			t.Errorf("alert %s: for: %q, want a duration above zero", r.Alert, r.For)
		}
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, a)
			}
		}
		if !strings.Contains(monitoring, "`"+r.Alert+"`") {
			t.Errorf("alert %s has no runbook line in %s, section \"Monitoring\"", r.Alert, operationsDoc)
		}
	}
}

// checkAlertUnitTests: every alert has a promtool unit test in which it
// fires (testdata/alerts_test.yml; checkPromtool runs them).
func checkAlertUnitTests(t *testing.T, rules []alertRule) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("testdata/alerts_test.yml: %v", err)
	}
	fires := map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("alert %s has no promtool unit test in which it fires (testdata/alerts_test.yml)", r.Alert)
		}
	}
}

// checkPromtool runs `promtool check rules` (PromQL syntax, templates)
// and the alerts' unit tests (testdata/alerts_test.yml);
// it must be there with DEVICEGATE_REQUIRE_PROMTOOL=1 (scripts/test.sh
// installs it and sets that under CI=true).
func checkPromtool(t *testing.T) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("DEVICEGATE_REQUIRE_PROMTOOL") == "1" {
			t.Error("promtool is missing (scripts/test.sh installs Debian's prometheus package)")
		} else {
			t.Log("promtool is not installed: the rules' PromQL is checked only by the tokenizer")
		}
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(repoRoot, alertsFile)).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	// Unit tests of the alerts: each fires on its series, after its for:.
	if out, err := exec.Command(promtool, "test", "rules", filepath.Join("testdata", "alerts_test.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules testdata/alerts_test.yml: %v\n%s", err, out)
	}
}

// scrapeRoles starts a CA node, a proxy on its store and an edge proxy fed
// by the CA, sends one refused request through each proxy, and returns
// the names of every series their /metrics answers hold. It also checks
// what the certificate expiry gauges report per role.
func scrapeRoles(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not logged in", http.StatusUnauthorized)
	}))
	defer app.Close()
	upstream := fmt.Sprintf(`  upstreams:
    - name: app
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: s}
      permissions:
        - {path: /orders/sold, point: orders.sold}
`, app.URL, app.URL+"/whoami")
	cfg := filepath.Join(dir, "devicegate.yaml")
	proxyListen := freePort(t)
	conf := fmt.Sprintf(`data_dir: data
ca:
  listen: 127.0.0.1:0
  admin_listen: %s
portal:
  listen: 127.0.0.1:0
proxy:
  listen: %s
  admin_listen: %s
  enroll_url: https://localhost:8444/
%s`, freePort(t), proxyListen, freePort(t), upstream)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "ca", "--config", cfg, "init")
	caNode := startRole(t, []string{"ca_url", "metrics_url"}, "serve", "--config", cfg)
	storeProxy := startRole(t, []string{"proxy_url", "metrics_url"}, "proxy", "--config", cfg)

	// The edge proxy: the credentials of `ca proxy-cert`, its own server
	// certificate from the operator's files.
	creds := filepath.Join(dir, "edge-creds")
	mustCLI(t, "ca", "--config", cfg, "proxy-cert", "--name", "edge-1", "--stores", "all", "--out", creds)
	edgeDir := filepath.Join(dir, "edge")
	if err := os.Mkdir(edgeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pki := testpki.New(t)
	server := pki.ServerCert(t, "localhost", "127.0.0.1")
	var chain []byte
	for _, der := range server.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(edgeDir, "server.crt"), chain, 0o600)
	os.WriteFile(filepath.Join(edgeDir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	edgeCfg := filepath.Join(edgeDir, "edge.yaml")
	edgeConf := fmt.Sprintf(`data_dir: data
tls: {cert_file: server.crt, key_file: server.key}
proxy:
  listen: %s
  admin_listen: %s
  enroll_url: https://localhost:8444/
  feed: {ca_url: %q, credentials_dir: %q}
%s`, freePort(t), freePort(t), caNode["ca_url"], creds, upstream)
	if err := os.WriteFile(edgeCfg, []byte(edgeConf), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := startRole(t, []string{"proxy_url", "metrics_url"}, "proxy", "--config", edgeCfg)

	// One refusal and one forwarded request per proxy: request counters
	// and the upstream histogram have series only once used.
	caRoots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(filepath.Join(dir, "data", "ca", "root.crt"))
	if err != nil || !caRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("CA root: %v", err)
	}
	edgeRoots := x509.NewCertPool()
	edgeRoots.AddCert(pki.Root)
	for _, p := range []struct {
		url   string
		roots *x509.CertPool
	}{{storeProxy["proxy_url"], caRoots}, {edge["proxy_url"], edgeRoots}} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots}}, Timeout: 10 * time.Second}
		resp, err := c.Get(p.url + "/orders/sold")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s/orders/sold without a client certificate: %d, want 403", p.url, resp.StatusCode)
		}
		if resp, err = c.Get(p.url + "/products"); err != nil { // a normal path: forwarded
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s/products: %d, want the app's 401", p.url, resp.StatusCode)
		}
	}

	exported := map[string]bool{}
	for _, r := range []struct {
		role  string
		url   string
		kinds []string // certificate kinds its expiry gauge must report
	}{
		{"serve", caNode["metrics_url"], []string{certKindRoot, certKindIntermediate, certKindServer}},
		{"proxy", storeProxy["metrics_url"], []string{certKindIntermediate, certKindServer}},
		{"edge proxy", edge["metrics_url"], []string{certKindRoot, certKindIntermediate, certKindServer, certKindProxy}},
	} {
		series := scrape(t, r.url)
		for s := range series {
			name, _, _ := strings.Cut(s, "{")
			exported[name] = true
		}
		checkCertExpiry(t, r.role, series, r.kinds)
	}
	return exported
}

// checkCertExpiry: the role reports a future NotAfter for each kind it
// must, and only those kinds.
func checkCertExpiry(t *testing.T, role string, series map[string]float64, kinds []string) {
	t.Helper()
	kindOf := regexp.MustCompile(`^devicegate_cert_expiry_timestamp_seconds\{.*kind="([a-z]+)"`)
	got := map[string]bool{}
	for s, v := range series {
		m := kindOf.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		got[m[1]] = true
		if !slices.Contains(kinds, m[1]) {
			t.Errorf("%s reports certificate kind %q: %s", role, m[1], s)
		}
		if at := time.Unix(int64(v), 0); at.Before(time.Now()) || at.After(time.Now().AddDate(30, 0, 0)) {
			t.Errorf("%s: %s = %s, not a plausible NotAfter", role, s, at)
		}
	}
	for _, k := range kinds {
		if !got[k] {
			t.Errorf("%s reports no %s certificate expiry", role, k)
		}
	}
}

// scrape reads a /metrics answer in the text format: series -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("%s: malformed line %q", url, line)
		}
		series[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return series
}

// startRole runs one devicegate command in-process until the test ends and
// returns the "key: value" lines it printed for keys.
func startRole(t *testing.T, keys []string, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		code := run(ctx, args, strings.NewReader(""), pw, &errb)
		pw.Close()
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("devicegate %s did not stop", strings.Join(args, " "))
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	got := map[string]string{}
	deadline := time.After(60 * time.Second)
	for len(got) < len(keys) {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("devicegate %s exited: %s", strings.Join(args, " "), errb.String())
			}
			if k, v, found := strings.Cut(line, ": "); found && slices.Contains(keys, k) {
				got[k] = strings.TrimSpace(v)
			}
		case <-deadline:
			t.Fatalf("devicegate %s printed no %v in 60 s: %s", strings.Join(args, " "), keys, errb.String())
		}
	}
	go func() { // keep draining: the command must never block on stdout
		for range lines {
		}
	}()
	return got
}
