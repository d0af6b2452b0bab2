package enroll

import "net/http"

// router is what routes registers on: the portal's mux, or a patternList
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

// Routes lists the patterns the portal serves, in registration order: the
// table its mux is built from, so tests can demand a case for each.
func (p *Portal) Routes() []string {
	var l patternList
	p.routes(&l)
	return l
}
