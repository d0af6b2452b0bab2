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
			[]string{"ca.listen", "line 3", "ca.ticket_ttl", "line 5", "log.format"}},
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
