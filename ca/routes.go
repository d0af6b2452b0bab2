package ca

import "github.com/devicegate/devicegate/internal/routetable"

// Routes lists the patterns the CA API serves, in registration order: the
// table its mux is built from, so tests can demand a case for each. The
// optional ACME service (MountACME, "/acme/") is not part of it.
func (s *Server) Routes() []string {
	var l routetable.Patterns
	s.routes(&l)
	return l
}
