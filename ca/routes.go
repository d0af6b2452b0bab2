package ca

import "net/http"

// router is what routes registers on: the CA API's mux, or a patternList
// that only lists the patterns (Routes).
type router interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
	Handle(pattern string, handler http.Handler)
}

// patternList records the patterns registered on it.
type patternList []string

func (l *patternList) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	*l = append(*l, pattern)
}

func (l *patternList) Handle(pattern string, _ http.Handler) { *l = append(*l, pattern) }

// Routes lists the patterns the CA API serves, in registration order: the
// table its mux is built from, so tests can demand a case for each. The
// optional ACME service (MountACME, "/acme/") is not part of it.
func (s *Server) Routes() []string {
	var l patternList
	s.routes(&l)
	return l
}
