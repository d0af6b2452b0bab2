package config

import (
	"strings"
	"testing"
)

// problemStarts is what each line of Parse's report starts with: the YAML
// path, or the decoder's "line N".
func problemStarts(t *testing.T, yaml string) []string {
	t.Helper()
	_, err := Parse([]byte(yaml), "/tmp")
	if err == nil {
		t.Fatal("accepted")
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		head, _, _ := strings.Cut(l, ": ")
		out = append(out, head)
	}
	return out
}

// Problems come in the order of the file, wherever the check that finds
// them sits: sections written out of the Config's order, an unknown key
// between two bad values, a default reported at its written parent.
func TestProblemsInFileOrder(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"sections out of struct order",
			"log:\n  level: loud\nportal:\n  listen: 10.0.0.1:1\n  proxy_url: http://z\nca:\n  public_url: http://x\n  validity: 1000d\n",
			[]string{"log.level", "portal.listen", "portal.proxy_url", "ca.public_url", "ca.validity"}},
		{"unknown keys between bad values",
			"ca:\n  listen: nonsense\n  bogus: 1\n  ticket_ttl: 2d\nextra: x\nlog:\n  format: xml\n",
			[]string{"ca.listen", "ca.bogus", "ca.ticket_ttl", "extra", "log.format"}},
		{"defaulted key at its parent, list items in order",
			"tls:\n  acme: {directory_url: \"https://acme.example/dir\"}\nproxy:\n  upstreams:\n    - {name: a, url: \"ftp://x\", hosts: [h], binding: {mode: header, hmac_key_file: k}}\n    - {url: \"http://127.0.0.1:1\", hosts: [h], binding: {mode: header, hmac_key_file: k}}\n",
			[]string{"tls.hosts", "tls.acme.agree_tos", "proxy.upstreams[0].url", "proxy.upstreams[1].name"}},
		{"keys in one flow mapping by column",
			"proxy:\n  upstreams:\n    - {hosts: [], url: \"ftp://x\", name: \"\", binding: {mode: header, hmac_key_file: k}}\n",
			[]string{"proxy.upstreams[0].hosts", "proxy.upstreams[0].url", "proxy.upstreams[0].name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := problemStarts(t, tc.yaml); strings.Join(got, " | ") != strings.Join(tc.want, " | ") {
				t.Fatalf("problems in order\n%s\nwant\n%s", strings.Join(got, " | "), strings.Join(tc.want, " | "))
			}
		})
	}
}

// The same file gives the same report every time: the URL and listener
// checks once walked maps, whose order changes from run to run.
func TestProblemsStableAcrossRuns(t *testing.T) {
	const y = "ca:\n  listen: 10.0.0.1:1\n  public_url: http://a\nproxy:\n  listen: 10.0.0.2:1\n  admin_listen: 10.0.0.3:1\n  enroll_url: http://b\n" +
		"portal:\n  listen: 10.0.0.4:1\n  proxy_url: http://c\ndemo:\n  backoffice_listen: 10.0.0.5:1\n"
	_, first := Parse([]byte(y), "/tmp")
	if first == nil || strings.Count(first.Error(), "\n") != 7 {
		t.Fatalf("want 8 problems, got %v", first)
	}
	for range 200 {
		if _, err := Parse([]byte(y), "/tmp"); err == nil || err.Error() != first.Error() {
			t.Fatalf("report changed between runs:\n%v\nthen\n%v", first, err)
		}
	}
}

// A problem names the key as written in the YAML, with "did you mean" for
// a misspelt key, and never a Go type; every problem of the file is
// reported, a bad duration included.
func TestProblemsNameYAMLKeys(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"misspelt key", "proxy:\n  max_stalenes: 30s\n", []string{"proxy.max_stalenes: unknown key (line 2); did you mean max_staleness?"}},
		{"misspelt top-level key", "data_dri: x\n", []string{"data_dri: unknown key (line 1); did you mean data_dir?"}},
		{"unknown key in a list item", "proxy:\n  upstreams:\n    - name: a\n      bogus: 1\n",
			[]string{"proxy.upstreams[0].bogus: unknown key (line 4); the keys here are name, url, hosts"}},
		{"wrong kind", "portal:\n  listen: [1]\n", []string{"portal.listen: want text, not a list (line 2)"}},
		{"number expected", "tls:\n  acme:\n    tls_alpn_port: abc\n", []string{`tls.acme.tls_alpn_port: want a whole number, not "abc" (line 3)`}},
		{"bad duration and more", "ca:\n  validity: abc\nlog:\n  levl: info\n",
			[]string{`ca.validity: bad duration "abc": want a duration like 30m, 24h or 365d (line 2)`, "log.levl: unknown key (line 4); did you mean level?"}},
		{"port out of range", "proxy:\n  listen: 127.0.0.1:84433\n", []string{`proxy.listen: "127.0.0.1:84433": the port must be a number from 0 to 65535`}},
		{"port not a number", "ca:\n  listen: 127.0.0.1:https\n", []string{`ca.listen: "127.0.0.1:https": the port must be a number`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "/tmp")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("report\n%v\nlacks %q", err, w)
				}
			}
			for _, goName := range []string{"config.", "not found in type", "unmarshal", "!!"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("report names Go internals (%q):\n%v", goName, err)
				}
			}
		})
	}
	// The legitimate case: the same listener with a port in range passes.
	if _, err := Parse([]byte("proxy:\n  listen: 127.0.0.1:8443\n"), "/tmp"); err != nil && strings.Contains(err.Error(), "proxy.listen") {
		t.Fatalf("a valid port refused: %v", err)
	}
}
