package proxy

import (
	"net/http"

	"github.com/devicegate/devicegate/proxy/internal/h1"
)

// sessionInput is what an app could take as the request's login session:
// every Cookie and Authorization header line, as sent. Both ways into the
// gateway (net/http and the fast path) hand the same thing to a binder.
type sessionInput struct {
	cookies []string
	auth    []string
}

// sessionOf reads the session input of a request net/http parsed.
func sessionOf(h http.Header) sessionInput {
	return sessionInput{cookies: h["Cookie"], auth: h["Authorization"]}
}

// sessionInput reads the session input of the fast path's request head
// (only asked for by the jwt and whoami bindings).
func (c *fastConn) sessionInput() sessionInput {
	s := sessionInput{cookies: c.sessCookies[:0], auth: c.sessAuth[:0]}
	h := &c.head
	for i := range h.NFields {
		f := &h.Fields[i]
		switch {
		case h1.EqualFold(f.Name, "Cookie"):
			s.cookies = append(s.cookies, string(f.Value))
		case h1.EqualFold(f.Name, "Authorization"):
			s.auth = append(s.auth, string(f.Value))
		}
	}
	c.sessCookies, c.sessAuth = s.cookies, s.auth
	return s
}
