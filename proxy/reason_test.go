package proxy

import "testing"

func TestReasonCodes(t *testing.T) {
	seen := map[string]Reason{}
	for r := reasonUnset; int(r) < len(reasonCodes); r++ {
		code := r.String()
		if code == "" {
			t.Errorf("reason %d has no code", r)
		}
		if prev, dup := seen[code]; dup {
			t.Errorf("reasons %d and %d share the code %q", prev, r, code)
		}
		seen[code] = r
		if r.Allowed() != (r == ReasonAllowed) {
			t.Errorf("%s.Allowed() = %v", code, r.Allowed())
		}
	}
	// The zero value and anything out of range refuse.
	var zero Reason
	if zero.Allowed() || Reason(200).Allowed() || Reason(200).String() != "undecided" {
		t.Error("an unset or unknown reason must refuse")
	}
	if ReasonAllowed.String() != "ok" || ReasonPolicyStale.String() != "policy_stale" {
		t.Error("the published codes changed")
	}
}
