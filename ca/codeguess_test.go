package ca

import (
	"net/http"
	"testing"
)

// An office behind one NAT address shares the code-guessing budget: the
// typos, expired and already used codes of a few colleagues must not lock
// the others out, while a flood of guesses from the address is still
// refused (see codeGuesses).
func TestEnrollCodeFailuresDoNotBlockOffice(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	c := httpClient(f, nil)
	used := f.protectedSub("used", 2)
	usedCode := f.ticket(used)
	if st, out := postEnroll(t, c, url, map[string]string{"code": usedCode, "csr": string(newCSR(t, newKey(t), nil))}); st != http.StatusCreated {
		t.Fatalf("first use of a code: %d %v", st, out)
	}
	// Twenty failures of the kinds an office makes, all from one address.
	bad := []string{"DG-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "DG-AAAA", "", usedCode}
	for i := range 20 {
		code := bad[i%len(bad)]
		if st, out := postEnroll(t, c, url, map[string]string{"code": code, "csr": string(newCSR(t, newKey(t), nil))}); st != http.StatusForbidden && st != http.StatusBadRequest {
			t.Fatalf("failure %d (%q): %d %v", i, code, st, out)
		}
	}
	colleague := f.protectedSub("colleague", 1)
	if st, out := postEnroll(t, c, url, map[string]string{"code": f.ticket(colleague), "csr": string(newCSR(t, newKey(t), nil))}); st != http.StatusCreated {
		t.Fatalf("a colleague's valid code after 20 office failures: %d %v, want 201", st, out)
	}
}
