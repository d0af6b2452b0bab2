package enroll

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// redirect is the portal's only way to send a browser elsewhere (303 See
// Other): the target goes through localPath, and the Location header is
// exactly what localPath checked (net/http's Redirect would clean the path
// again afterwards, which is how "/./\evil.com" became "/\evil.com").
func redirect(w http.ResponseWriter, target string) {
	w.Header().Set("Location", localPath(target))
	w.WriteHeader(http.StatusSeeOther)
}

// localPath returns target when it is a canonical path of this site, and
// "/" otherwise. Browsers read "\" as "/", strip tabs and newlines anywhere
// and spaces and controls at the ends, so "/\x", "/\t/x" or " //x" name
// another host. So: no "\" and no control byte, raw or percent-encoded; no
// scheme, host or userinfo; the decoded path must already be clean (no
// ".", "..", "//"; an attacker's "/.//x" is refused, not repaired). The
// result is printable ASCII (non-ASCII is percent-encoded) and the
// fragment is dropped.
func localPath(target string) string {
	const fallback = "/"
	if !strings.HasPrefix(target, "/") || hasUnsafeByte(target, true) {
		return fallback
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fallback
	}
	p := u.Path
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || hasUnsafeByte(p, false) || !isClean(p) {
		return fallback
	}
	// The query is sent as given: printable ASCII without "\" or space.
	for i := 0; i < len(u.RawQuery); i++ {
		if c := u.RawQuery[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return fallback
		}
	}
	out := u.EscapedPath() // keeps an escaped "/" (%2F) escaped
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

// hasUnsafeByte reports a "\" or an ASCII control byte (tab, CR, LF, NUL,
// DEL, ...); with raw, also a space, which the raw target never needs.
func hasUnsafeByte(s string, raw bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f || c == '\\' || (raw && c == ' ') {
			return true
		}
	}
	return false
}

// isClean says whether path.Clean leaves p as it is (a trailing "/" kept).
func isClean(p string) bool {
	c := path.Clean(p)
	return c == p || c+"/" == p
}
