package enroll_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ownerTry posts the owner login form from b's client (code "" sends the
// form without a code, as the normal form does).
func ownerTry(b *browser, password, totpCode string) (int, string) {
	b.t.Helper()
	b.get("/owner/login")
	form := url.Values{"store": {"shop"}, "password": {password}}
	if totpCode != "" {
		form.Set("code", totpCode)
	}
	st, _, loc := b.post("/owner/login", form)
	return st, loc
}

// An attacker's wrong passwords lock out the attacker's client, not the
// owner: the owner's known browser gets in even behind the attacker's NAT
// address, a new browser elsewhere gets in, a new browser behind that
// address logs in with password and TOTP code together. Counters are
// shared by the portal nodes.
func TestLockoutKeepsOwnerIn(t *testing.T) {
	e := newEnv(t)
	nodeB := e.portalNode()
	const nat = "203.0.113.66"
	home := e.browser().at(nil, "198.51.100.7")
	secret := home.ownerLogin("") // binds the TOTP and marks the browser as known

	// The attacker, behind the office NAT, alternates portal nodes.
	attacker := e.browser().at(nil, nat)
	for i := range 5 {
		node := map[bool]*browser{true: attacker.at(nil, nat), false: attacker.at(nodeB, nat)}[i%2 == 0]
		if st, _ := ownerTry(node, "wrong-password", ""); st != http.StatusUnauthorized {
			t.Fatalf("attacker try %d: %d, want 401", i, st)
		}
	}
	for _, node := range []struct {
		name string
		srv  bool
	}{{"node A", false}, {"node B", true}} {
		b := attacker.at(nil, nat)
		if node.srv {
			b = attacker.at(nodeB, nat)
		}
		if st, _ := ownerTry(b, ownerPassword, ""); st != http.StatusTooManyRequests {
			t.Fatalf("attacker's client after 5 failures on %s: %d, want 429 (capped)", node.name, st)
		}
	}

	// Legitimate clients of the owner.
	tests := []struct {
		name   string
		b      *browser
		status int
		loc    string
	}{
		{"known browser behind the attacker's address, node B", home.at(nodeB, nat), http.StatusSeeOther, "/owner/totp"},
		{"known browser at home", home.at(nil, "198.51.100.7"), http.StatusSeeOther, "/owner/totp"},
		{"new browser at another address", e.browser().at(nil, "192.0.2.44"), http.StatusSeeOther, "/owner/totp"},
		{"new browser behind the attacker's address", e.browser().at(nodeB, nat), http.StatusTooManyRequests, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, loc := ownerTry(tc.b, ownerPassword, "")
			if st != tc.status || loc != tc.loc {
				t.Fatalf("%d %q, want %d %q", st, loc, tc.status, tc.loc)
			}
		})
	}
	// The known browser completes its login.
	b := home.at(nodeB, nat)
	b.get("/owner/totp")
	e.now = e.now.Add(30 * time.Second)
	if st, _, loc := b.post("/owner/totp", url.Values{"code": {code(t, secret, e.now)}}); st != http.StatusSeeOther || loc != "/owner/" {
		t.Fatalf("known browser's TOTP step: %d %q", st, loc)
	}
}

// A client refused by the lockout logs in with its password and TOTP code
// in one form; any wrong part gets one answer (no password oracle) and
// logs nobody in; the attacker, without the code, stays capped.
func TestLockoutUnlockWithTOTP(t *testing.T) {
	e := newEnv(t)
	const nat = "203.0.113.66"
	secret := e.browser().at(nil, "198.51.100.7").ownerLogin("")
	attacker := e.browser().at(nil, nat)
	for range 5 {
		ownerTry(attacker, "wrong-password", "")
	}
	owner := e.browser().at(nil, nat) // a new browser behind the attacker's address
	if st, _ := ownerTry(owner, ownerPassword, ""); st != http.StatusTooManyRequests || !strings.Contains(owner.last, `name="code"`) {
		t.Fatalf("locked client: %d, want 429 with a code field:\n%s", st, owner.last)
	}
	e.now = e.now.Add(30 * time.Second)
	good := code(t, secret, e.now)
	wrong := fmt.Sprintf("%06d", (atoi(good)+500000)%1000000)
	tests := []struct {
		name, password, code string
		status               int
		loc                  string
	}{
		{"right password, wrong code", ownerPassword, wrong, http.StatusUnauthorized, ""},
		{"wrong password, right code", "wrong-password", good, http.StatusUnauthorized, ""},
		{"right password, malformed code", ownerPassword, "12ab56", http.StatusUnauthorized, ""},
		{"right password and code", ownerPassword, good, http.StatusSeeOther, "/owner/"},
	}
	var answers []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, loc := ownerTry(owner, tc.password, tc.code)
			if st != tc.status || loc != tc.loc {
				t.Fatalf("%d %q, want %d %q", st, loc, tc.status, tc.loc)
			}
			if st == http.StatusUnauthorized {
				answers = append(answers, errorText(owner.last))
			}
		})
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("failed unlocks answer differently: %q vs %q", answers[0], a)
		}
	}
	if st, _, _ := owner.get("/owner/"); st != http.StatusOK {
		t.Fatalf("console after the unlock: %d", st)
	}

	// The attacker, without the code, is still capped on the unlock path
	// (10 failed unlocks per address, the owner's two above included).
	refused := false
	for i := range 10 {
		st, loc := ownerTry(attacker, "guessed-password", fmt.Sprintf("%06d", i))
		if loc != "" {
			t.Fatalf("attacker unlock try %d logged in: %d %q", i, st, loc)
		}
		if st == http.StatusTooManyRequests {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("the unlock path has no cap")
	}
	if st, _, _ := attacker.get("/owner/"); st != http.StatusSeeOther {
		t.Fatalf("attacker reached the console: %d", st)
	}
}

// Failures from many addresses slow the account down for unknown clients
// (one try per 30 s), but lock out nobody: the owner's known browser gets
// in at once, and a new browser with password and TOTP code.
func TestLockoutSlowsAccountAcrossClients(t *testing.T) {
	e := newEnv(t)
	home := e.browser().at(nil, "198.51.100.7")
	secret := home.ownerLogin("")
	for i := range 20 { // 5 addresses, 4 failures each: none is locked on its own
		bot := e.browser().at(nil, fmt.Sprintf("203.0.113.%d", i/4+1))
		if st, _ := ownerTry(bot, "wrong-password", ""); st != http.StatusUnauthorized {
			t.Fatalf("bot try %d: %d", i, st)
		}
	}
	fresh := e.browser().at(nil, "192.0.2.9")
	tests := []struct {
		name     string
		b        *browser
		password string
		advance  time.Duration
		status   int
	}{
		{"a new address gets one try", fresh, "wrong-password", 0, http.StatusUnauthorized},
		{"then waits", e.browser().at(nil, "192.0.2.10"), "wrong-password", 0, http.StatusTooManyRequests},
		{"even with the right password", e.browser().at(nil, "192.0.2.11"), ownerPassword, time.Second, http.StatusTooManyRequests},
		{"the known browser is not slowed", home, ownerPassword, 0, http.StatusSeeOther},
		{"after 30 s the next try", e.browser().at(nil, "192.0.2.12"), "wrong-password", 30 * time.Second, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.now = e.now.Add(tc.advance)
			if st, _ := ownerTry(tc.b, tc.password, ""); st != tc.status {
				t.Fatalf("%d, want %d", st, tc.status)
			}
		})
	}
	// A new browser of the owner passes with password and code together.
	owner := e.browser().at(nil, "192.0.2.13")
	if st, _ := ownerTry(owner, ownerPassword, ""); st != http.StatusTooManyRequests {
		t.Fatalf("new browser while slowed: %d", st)
	}
	if st, loc := ownerTry(owner, ownerPassword, code(t, secret, e.now)); st != http.StatusSeeOther || loc != "/owner/" {
		t.Fatalf("new browser with password and code: %d %q", st, loc)
	}
}

// Staff unlock the same way; a sub-account without phone verification has
// no code, so its refused client waits.
func TestLockoutUnlockStaff(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	withPhone := owner.newSub("alice", "operations", "staff-password-1")
	secret := owner.protect(withPhone, "1")
	owner.newSub("bob", "operations", "staff-password-1")
	const nat = "203.0.113.66"
	try := func(b *browser, user, password, totpCode string) (int, string) {
		b.get("/staff/login")
		form := url.Values{"username": {user}, "password": {password}}
		if totpCode != "" {
			form.Set("code", totpCode)
		}
		st, _, loc := b.post("/staff/login", form)
		return st, loc
	}
	for _, user := range []string{"shop:alice", "shop:bob"} {
		attacker := e.browser().at(nil, nat)
		for range 5 {
			try(attacker, user, "wrong-password", "")
		}
	}
	e.now = e.now.Add(30 * time.Second)
	tests := []struct {
		name, user, code string
		status           int
		loc              string
	}{
		{"without a code", "shop:alice", "", http.StatusTooManyRequests, ""},
		{"with a wrong code", "shop:alice", "000000", http.StatusUnauthorized, ""},
		{"with the code", "shop:alice", code(t, secret, e.now), http.StatusSeeOther, "/staff/"},
		{"no phone: no code to give", "shop:bob", "123456", http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser().at(nil, nat)
			if st, loc := try(b, tc.user, "staff-password-1", tc.code); st != tc.status || loc != tc.loc {
				t.Fatalf("%d %q, want %d %q", st, loc, tc.status, tc.loc)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// errorText is the error paragraph of a page.
func errorText(page string) string {
	i := strings.Index(page, `class="error"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</")
	return page[i : i+j]
}
