package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/devicegate/devicegate/proxy/internal/h1"
)

// errAmbiguousSession: the request carries more than one thing an app
// could take as its session (two session cookies, or a session cookie and
// an Authorization header), so the gateway cannot know which one the app
// will use. Apps differ (the first cookie wins in some, the last in
// others, PHP reads "sid.x" as "sid_x", ASP.NET ignores case), so the
// high-risk request is refused rather than guessed.
var errAmbiguousSession = errors.New("the request carries more than one app session")

// sessionCookie returns the one value of the cookie named name in r's
// Cookie header lines (all of them, as sent), errNotLoggedIn when there is none
// or its value is not a valid cookie value, and errAmbiguousSession when
// more than one cookie has a name an app could read as name.
func sessionCookie(cookies []string, name string) (string, error) {
	switch matches := countCookies(cookies, name); {
	case matches > 1:
		return "", errAmbiguousSession
	case matches == 0:
		return "", errNotLoggedIn
	}
	// The exact name with a valid value, or nothing (net/http's reading).
	c, err := (&http.Request{Header: http.Header{"Cookie": cookies}}).Cookie(name)
	if err != nil || c.Value == "" {
		return "", errNotLoggedIn
	}
	return c.Value, nil
}

// countCookies counts the cookies an app could read as name, whatever
// their values.
func countCookies(cookies []string, name string) int {
	want := cookieNameKey(name)
	matches := 0
	for _, line := range cookies {
		for part := range strings.SplitSeq(line, ";") {
			n, _, _ := strings.Cut(part, "=")
			if cookieNameKey(n) == want {
				matches++
			}
		}
	}
	return matches
}

// cookieNameKey folds a cookie name the ways apps fold them: surrounding
// white space trimmed, percent-escapes decoded, ASCII case folded, and
// '.', ' ' and '[' read as '_' (PHP).
func cookieNameKey(n string) string {
	n = strings.Trim(n, " \t")
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == '%' && i+2 < len(n) {
			if hi, ok := unhex(n[i+1]); ok {
				if lo, ok := unhex(n[i+2]); ok {
					c = hi<<4 | lo
					i += 2
				}
			}
		}
		switch c = h1.Lower(c); c {
		case '.', ' ', '[':
			c = '_'
		}
		b.WriteByte(c)
	}
	return b.String()
}
