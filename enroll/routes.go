package enroll

import "github.com/devicegate/devicegate/internal/routetable"

// Routes lists the patterns the portal serves, in registration order: the
// table its mux is built from, so tests can demand a case for each.
func (p *Portal) Routes() []string {
	var l routetable.Patterns
	p.routes(&l)
	return l
}
