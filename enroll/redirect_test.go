package enroll

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// Attack strings are the target after the query has been decoded once
// (what r.URL.Query().Get returns); every one must fall back to "/".
var redirectAttacks = []string{
	"", "owner", "evil.com", "./evil", "../evil", "%2F%2Fevil.com",
	"//evil.com", "///evil.com", "//evil.com/owner/", "//evil.com@portal.example/",
	`/\evil.com`, `\/evil.com`, `\\evil.com`, `/./\evil.com`, `/.\evil.com`, `/x\y`,
	"/%5Cevil.com", "/%5cevil.com", "/./%5Cevil.com", "/%5C%5Cevil.com", "/%255C/../%5Cevil.com",
	"/%2F/evil.com", "/%2f%2fevil.com", "/.//evil.com", "/..//evil.com", "/%2e%2e//evil.com",
	"/%2e%2e/%2e%2e//evil.com", "/owner/../..//evil.com", "/a/./b",
	"/\t/evil.com", "/\n/evil.com", "/\r\n/evil.com", "\t//evil.com", " //evil.com", "/\x00evil",
	"/%09/evil.com", "/%0a/evil.com", "/%0d%0a/evil.com", "/%00", "/\x7fevil", "/%7f",
	"/owner/?q=a\\b", "/owner/?q=\t", "/owner/?q=a b", "/owner/?q=é",
	"https://evil.com", "HTTPS://evil.com/", "http:evil.com", "http:/evil.com", "http:\\\\evil.com",
	"javascript:alert(1)", "jAvAsCrIpT:alert(1)", "java\tscript:alert(1)", "data:text/html,x",
	"mailto:x@evil.com", "/%", "/%zz",
}

func TestLocalPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/owner/", "/owner/"},
		{"/owner/login", "/owner/login"},
		{"/staff/login?next=x", "/staff/login?next=x"},
		{"/a?b=c", "/a?b=c"},
		{"/owner/subs/0f3a?ok=saved", "/owner/subs/0f3a?ok=saved"},
		{"/owner/subs/a%2Fb", "/owner/subs/a%2Fb"}, // an escaped slash stays one segment
		{"/owner/audit?target=shop%3Aalice", "/owner/audit?target=shop%3Aalice"},
		{"/?next=//evil.com", "/?next=//evil.com"}, // inside a query it names no host
		{"/@evil.com", "/@evil.com"},               // a path, not a userinfo
		{"/owner/#//evil.com", "/owner/"},          // the fragment is dropped
		{"/staff/小明", "/staff/%E5%B0%8F%E6%98%8E"}, // non-ASCII is sent escaped
	}
	for _, a := range redirectAttacks {
		tests = append(tests, struct{ in, want string }{a, "/"})
	}
	for _, tc := range tests {
		if got := localPath(tc.in); got != tc.want {
			t.Errorf("localPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever the input, the output is a same-origin path: resolved against
// the portal's origin it stays there, and it is stable (a second pass, or
// the cleaning net/http's Redirect would do, changes nothing).
func FuzzLocalPath(f *testing.F) {
	for _, a := range redirectAttacks {
		f.Add(a)
	}
	for _, s := range []string{"/owner/", "/staff/login?next=x", "/owner/subs/a%2Fb", "/staff/小明"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://portal.example/dir/page")
	f.Fuzz(func(t *testing.T, in string) {
		out := localPath(in)
		if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") {
			t.Fatalf("localPath(%q) = %q: not a rooted path", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				t.Fatalf("localPath(%q) = %q: byte %#x", in, out, c)
			}
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("localPath(%q) = %q does not parse: %v", in, out, err)
		}
		if got := base.ResolveReference(u); got.Scheme != "https" || got.Host != "portal.example" || got.User != nil {
			t.Fatalf("localPath(%q) = %q resolves to %s", in, out, got)
		}
		if again := localPath(out); again != out {
			t.Fatalf("localPath not stable: %q -> %q -> %q", in, out, again)
		}
	})
}

// Every redirect of the portal goes through redirect (and so localPath):
// no other file of the package calls http.Redirect.
func TestOneRedirectHelper(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "redirect.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Redirect" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "http" {
					t.Errorf("%s: http.Redirect outside redirect.go; use p.redirect", fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
}
