package enroll

import (
	"io/fs"
	"regexp"
	"testing"
)

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-1": "'-1", "@SUM": "'@SUM", "\tx": "'\tx",
		"shop:alice": "shop:alice", "": "",
	} {
		if got := safeCell(in); got != want {
			t.Errorf("safeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeAgent(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36":        "Windows / Chrome",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15": "macOS / Safari",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                             "Linux / Firefox",
		"": "—",
	} {
		if got := describeAgent(ua); got != want {
			t.Errorf("describeAgent(%q) = %q, want %q", ua, got, want)
		}
	}
}

// Every message exists in both languages.
func TestMessagesComplete(t *testing.T) {
	for k, v := range messages {
		if v[0] == "" || v[1] == "" {
			t.Errorf("message %q is missing a language", k)
		}
	}
}

// Every text a template asks for exists (a missing key would render empty).
func TestTemplatesUseKnownMessages(t *testing.T) {
	names, _ := fs.Glob(templateFS, "templates/*.html")
	used := regexp.MustCompile(`\.L\.([a-z0-9_]+)`)
	for _, n := range names {
		body, _ := fs.ReadFile(templateFS, n)
		for _, m := range used.FindAllStringSubmatch(string(body), -1) {
			if _, ok := catalogs()["en"][m[1]]; !ok {
				t.Errorf("%s uses unknown message %q", n, m[1])
			}
		}
	}
}
