package main

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/config"
	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Build       string            `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
}

// repoRoot is the module's root, seen from cmd/devicegate.
const repoRoot = "../.."

// TestContainerComposeFile checks docker-compose.yml against the files it
// names: every bind-mounted file exists, every devicegate role's config
// passes check-config and listens on the ports the service publishes and
// health-checks, every secret is a file under configs/compose/secrets/
// (documented there) and no secret is written in the compose file itself,
// Prometheus scrapes the proxies' metrics listeners, and the Dockerfile's
// final stage runs as a non-root user with /data and a HEALTHCHECK.
func TestContainerComposeFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"postgres", "ca", "proxy-1", "proxy-2", "backoffice", "prometheus", "grafana"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no service %q", want)
		}
	}

	// Secrets: files under configs/compose/secrets, each documented there.
	secretsREADME, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose/secrets/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range cf.Secrets {
		if filepath.Dir(filepath.Clean(s.File)) != "configs/compose/secrets" || filepath.Base(s.File) != name {
			t.Errorf("secret %s: file %q, want ./configs/compose/secrets/%s", name, s.File, name)
		}
		if !strings.Contains(string(secretsREADME), "`"+name+"`") {
			t.Errorf("secret %s is not documented in configs/compose/secrets/README.md", name)
		}
	}
	// No secret in the compose file: only *_FILE variables may name one.
	secretish := regexp.MustCompile(`(?i)password|secret|token|_key|dsn`)
	for name, svc := range cf.Services {
		for k, v := range svc.Environment {
			if secretish.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: environment %s=%q looks like a secret in the compose file", name, k, v)
			}
		}
		for _, s := range svc.Secrets {
			if _, ok := cf.Secrets[s]; !ok {
				t.Errorf("%s uses secret %q, not declared under secrets:", name, s)
			}
		}
	}

	published := map[string]string{} // host port -> service
	for name, svc := range cf.Services {
		mounts := checkComposeVolumes(t, name, svc, cf)
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			host := parts[len(parts)-2]
			if other, dup := published[host]; dup {
				t.Errorf("host port %s is published by %s and %s", host, other, name)
			}
			published[host] = name
		}
		if svc.Build == "" {
			continue // postgres, prometheus, grafana: their own images
		}
		if svc.Build != "." || svc.Image == "" {
			t.Errorf("%s: build %q image %q, want the image of ./Dockerfile", name, svc.Build, svc.Image)
		}
		if len(svc.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		if _, ok := findCommand(commands(), svc.Command[0]); !ok {
			t.Errorf("%s: %q is not a devicegate command", name, svc.Command[0])
		}
		listens := checkComposeRole(t, name, svc, mounts)
		// What the service publishes and health-checks, it listens on.
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if !slices.Contains(listens, parts[len(parts)-1]) {
				t.Errorf("%s publishes container port %s, its role listens on %v", name, parts[len(parts)-1], listens)
			}
		}
		urls := strings.Fields(svc.Environment[healthURLsEnv])
		if len(urls) == 0 {
			t.Errorf("%s: no %s: the image's HEALTHCHECK would fail", name, healthURLsEnv)
		}
		for _, u := range urls {
			pu, err := url.Parse(u)
			if err != nil || !slices.Contains(listens, pu.Port()) {
				t.Errorf("%s: health URL %s is not on a port its role listens on %v", name, u, listens)
			}
			if pu != nil && pu.Scheme == "https" && svc.Environment[healthRootEnv] == "" {
				t.Errorf("%s: https health URL without %s", name, healthRootEnv)
			}
		}
	}
	checkPrometheusTargets(t, cf)
	checkGrafanaProvisioning(t)
	checkDockerfile(t)
}

// checkComposeVolumes checks every volume of a service: a bind mount names
// an existing file under configs/compose/, a named volume is declared. It
// returns container path -> host path of the bind mounts.
func checkComposeVolumes(t *testing.T, name string, svc composeService, cf composeFile) map[string]string {
	t.Helper()
	binds := map[string]string{}
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("%s: volume %q is not SOURCE:TARGET", name, v)
			continue
		}
		src, dst := parts[0], parts[1]
		if !strings.HasPrefix(src, "./") {
			if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes:", name, src)
			}
			continue
		}
		if !strings.HasPrefix(src, "./configs/compose/") {
			t.Errorf("%s: bind mount %s is outside configs/compose/", name, src)
		}
		if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		binds[dst] = filepath.Join(repoRoot, src)
	}
	return binds
}

// checkComposeRole runs check-config on the config the service's command
// names, checks the /run/secrets files it uses are the service's secrets,
// and returns the ports the role listens on.
func checkComposeRole(t *testing.T, name string, svc composeService, binds map[string]string) []string {
	t.Helper()
	args := svc.Command
	for i, a := range args {
		if strings.HasPrefix(a, "/run/secrets/") && !slices.Contains(svc.Secrets, strings.TrimPrefix(a, "/run/secrets/")) {
			t.Errorf("%s: argument %s is not one of its secrets %v", name, a, svc.Secrets)
		}
		if a == "--listen" && i+1 < len(args) {
			_, port, _ := net.SplitHostPort(args[i+1])
			return []string{port}
		}
	}
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Errorf("%s: command %v has no --config", name, args)
		return nil
	}
	host, ok := binds[args[i+1]]
	if !ok {
		t.Errorf("%s: --config %s is not a file mounted from configs/compose/", name, args[i+1])
		return nil
	}
	mustCLI(t, "check-config", host)
	raw, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range regexp.MustCompile(`/run/secrets/([a-z_]+)`).FindAllStringSubmatch(string(raw), -1) {
		if !slices.Contains(svc.Secrets, ref[1]) {
			t.Errorf("%s: %s names /run/secrets/%s, not one of its secrets %v", name, host, ref[1], svc.Secrets)
		}
	}
	cfg, err := config.Load(host)
	if err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	switch args[0] {
	case "serve":
		listens := []string{port(cfg.CA.Listen), port(cfg.Portal.Listen)}
		for _, optional := range []string{cfg.CA.AdminListen, cfg.Portal.OwnerListen} {
			if optional != "" {
				listens = append(listens, port(optional))
			}
		}
		return listens
	case "proxy":
		return []string{port(cfg.Proxy.Listen), port(cfg.Proxy.AdminListen)}
	}
	t.Errorf("%s: role %q has no listeners known to this test", name, args[0])
	return nil
}

// checkPrometheusTargets: every target is the metrics port of a CA
// (serve) or proxy service, and every such service is scraped.
func checkPrometheusTargets(t *testing.T, cf composeFile) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	load := func(file string) *config.Config {
		cfg, err := config.Load(filepath.Join(repoRoot, "configs/compose", file))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	metricsPort := map[string]string{ // role -> the port of its metrics
		"proxy": port(load("proxy.yaml").Proxy.AdminListen),
		"serve": port(load("ca.yaml").CA.AdminListen),
	}
	var scraped []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := net.SplitHostPort(target)
				svc, ok := cf.Services[host]
				if !ok || len(svc.Command) == 0 || metricsPort[svc.Command[0]] == "" || port != metricsPort[svc.Command[0]] {
					t.Errorf("prometheus target %s is not a CA or proxy service's metrics port %v", target, metricsPort)
				}
				scraped = append(scraped, host)
			}
		}
	}
	for name, svc := range cf.Services {
		if len(svc.Command) > 0 && metricsPort[svc.Command[0]] != "" && !slices.Contains(scraped, name) {
			t.Errorf("prometheus does not scrape %s", name)
		}
	}
}

// checkGrafanaProvisioning: the dashboard is valid JSON and queries the
// provisioned data source.
func checkGrafanaProvisioning(t *testing.T) {
	t.Helper()
	ds, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose/grafana/provisioning/datasources/prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sources struct {
		Datasources []struct{ UID string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(ds, &sources); err != nil || len(sources.Datasources) != 1 {
		t.Fatalf("grafana data sources: %v %+v", err, sources)
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose/grafana/dashboards/devicegate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct {
				Datasource struct{ UID string }
				Expr       string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(dash.Panels))
	}
	// The metric names of the queries: TestMonitoringConfigs.
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			if q.Datasource.UID != sources.Datasources[0].UID {
				t.Errorf("panel %q queries data source %q", p.Title, q.Datasource.UID)
			}
		}
	}
}

// checkDockerfile: the final stage is FROM scratch, non-root, with the
// /data volume and a HEALTHCHECK through `devicegate health`.
func checkDockerfile(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := strings.Split(string(raw), "\nFROM ")
	final := stages[len(stages)-1]
	for _, want := range []string{"scratch\n", "USER 65532:65532", `VOLUME ["/data"]`, `"/usr/local/bin/devicegate", "health"`} {
		if !strings.Contains(final, want) {
			t.Errorf("the Dockerfile's final stage has no %q", want)
		}
	}
	if strings.Contains(final, "USER root") || strings.Contains(final, "USER 0") {
		t.Error("the Dockerfile's final stage runs as root")
	}
}
