package storetest

import (
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// testIssuePrecheck: the one read before signing gives what LookupTicket,
// GetSubAccount and CountActiveDevices give, with the same errors.
func testIssuePrecheck(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 5)
	other := e.protected(e.mustTenant("other"), "bob", 5)
	e.issue(s)
	e.issue(s)
	fresh := e.ticket(s, 30*time.Minute)
	used := e.ticket(s, 30*time.Minute)
	req := e.issueReq(s)
	req.TicketHash = used
	if _, _, err := e.st.IssueDevice(e.ctx, req, actor); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		hash          []byte
		tenant, sub   string
		now           time.Time
		want          error
		wantSub       string
		wantActive    int
		wantTicketSub string
	}{
		{"ticket", fresh, "", "", e.now, nil, s.ID, 3, s.ID},
		{"used ticket", used, "", "", e.now, store.ErrTicketUsed, s.ID, 3, s.ID},
		{"expired ticket", fresh, "", "", e.now.Add(31 * time.Minute), store.ErrTicketExpired, s.ID, 3, s.ID},
		{"unknown ticket", make([]byte, 32), "", "", e.now, store.ErrTicketUnknown, "", 0, ""},
		{"sub-account", nil, s.TenantID, s.ID, e.now, nil, s.ID, 3, ""},
		{"sub-account of another store", nil, s.TenantID, other.ID, e.now, store.ErrNotFound, "", 0, ""},
		{"no devices", nil, other.TenantID, other.ID, e.now, nil, other.ID, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.st.IssuePrecheck(e.ctx, tc.hash, tc.tenant, tc.sub, tc.now)
			wantErr(t, err, tc.want)
			if c.SubAccount.ID != tc.wantSub || c.Active != tc.wantActive || c.Ticket.SubID != tc.wantTicketSub {
				t.Errorf("IssuePrecheck: sub %q active %d ticket's sub %q, want %q %d %q", c.SubAccount.ID, c.Active, c.Ticket.SubID, tc.wantSub, tc.wantActive, tc.wantTicketSub)
			}
			if tc.wantSub != "" && c.SubAccount.Protection.MaxDevices != 5 {
				t.Errorf("IssuePrecheck: sub-account %+v", c.SubAccount)
			}
		})
	}
}
