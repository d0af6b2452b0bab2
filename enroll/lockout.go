package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/ratelimit"
)

// loginLimits bound password guessing so that an attacker cannot lock the
// real user out. All counters live in the store (every portal node counts
// the same failures).
//
//   - clients: 5 failures in 15 min lock one (account, client) pair. The
//     client is the browser's known-device id when it carries one for this
//     account (knowndevice.go), else its IP; so the user's own browser keeps
//     its own count even behind the attacker's NAT address.
//   - addresses: 30 failures in 15 min from one IP over all accounts
//     (credential stuffing). Known devices skip it.
//   - slow, tick: past 20 failures of unknown clients in 15 min an account
//     is slowed, not locked: unknown clients share one try per 30 s (taken
//     before the password is checked, so parallel tries do not slip
//     through). Known devices skip it.
//   - unlock: a refused client may send password AND TOTP code in one form.
//     Any wrong part gets one answer (no password oracle), a wrong code with
//     the right password counts toward the account's TOTP lock as on the
//     TOTP step, and 10 failed unlocks in 15 min lock a known device (for
//     its account) or an IP (for every account: each try costs a password
//     hash, so an address does not get 10 per account name).
//
// Success clears only a known device's counters: counters of an IP are
// never cleared by a login, so the user's success does not refill the
// budget of an attacker at the same address.
type loginLimits struct {
	clients   *ratelimit.Shared
	addresses *ratelimit.Shared
	slow      *ratelimit.Shared
	tick      *ratelimit.Shared
	unlock    *ratelimit.Shared
	totp      *ratelimit.Shared // the TOTP step, per account (only password holders get there)
}

func newLoginLimits(c ratelimit.Counters, log *slog.Logger) loginLimits {
	const window = 15 * time.Minute
	return loginLimits{
		clients:   ratelimit.NewShared(c, "portal-client:", 5, window, log),
		addresses: ratelimit.NewShared(c, "portal-ip:", 30, window, log),
		slow:      ratelimit.NewShared(c, "portal-slow:", 20, window, log),
		tick:      ratelimit.NewShared(c, "portal-tick:", 1, 30*time.Second, log),
		unlock:    ratelimit.NewShared(c, "portal-unlock:", 10, window, log),
		totp:      ratelimit.NewShared(c, "portal-account:", 5, window, log),
	}
}

// attempt is one password try: its account and client, as the limits key them.
type attempt struct {
	account string // "owner:<store>" or "sub:<store:name>"
	client  string // key of the (account, client) pair
	unlock  string // key of the unlock counter
	acct    string // key of the account alone
	ip      string
	known   bool // the browser carries a known-device entry for account
}

func (p *Portal) newAttempt(r *http.Request, account string) attempt {
	sum := sha256.Sum256([]byte(account)) // typed names can be long and anything
	a := attempt{account: account, acct: hex.EncodeToString(sum[:16]), ip: clientIP(r)}
	if id := p.knownDevice(r, account); id != "" {
		a.client, a.known = a.acct+"|dev:"+id, true
		a.unlock = a.client
	} else {
		a.client = a.acct + "|ip:" + a.ip
		a.unlock = "ip:" + a.ip
	}
	return a
}

// admit says whether the try may check a password; an admitted try of an
// unknown client of a slowed account has taken the account's tick. An
// error is the store's: nothing was decided about the client.
func (p *Portal) admit(ctx context.Context, a attempt) (bool, error) {
	now := p.opts.Now()
	l := p.limits
	if ok, _, err := l.clients.Check(ctx, a.client, now); !ok {
		return false, err
	}
	if a.known {
		return true, nil
	}
	if ok, _, err := l.addresses.Check(ctx, a.ip, now); !ok {
		return false, err
	}
	calm, _, err := l.slow.Check(ctx, a.acct, now)
	if err != nil {
		return false, err
	}
	if !calm {
		if ok, _, err := l.tick.Check(ctx, a.acct, now); !ok {
			return false, err
		}
		l.tick.Fail(ctx, a.acct, now)
	}
	return true, nil
}

// failedPassword counts a wrong password (or unknown account).
func (p *Portal) failedPassword(ctx context.Context, a attempt) {
	now := p.opts.Now()
	p.limits.clients.Fail(ctx, a.client, now)
	if !a.known {
		p.limits.addresses.Fail(ctx, a.ip, now)
		p.limits.slow.Fail(ctx, a.acct, now)
	}
}

// loggedIn ends a completed login of account from r's browser: a known
// device's counters start over, and the browser is (again) known.
func (p *Portal) loggedIn(w http.ResponseWriter, r *http.Request, account string) {
	if a := p.newAttempt(r, account); a.known {
		p.limits.clients.Succeed(r.Context(), a.client)
		p.limits.unlock.Succeed(r.Context(), a.unlock)
	}
	p.rememberDevice(w, r, account)
}

// tryUnlock checks password and TOTP code of a refused client together.
// passwordOK is the caller's verdict on the password (checked whether or
// not the account exists, so both cost the same); the code is checked only
// with the right password, so a guesser cannot spend the user's codes.
// It reports whether both were right; a false is always the same answer.
// An error is the store's, and then no failure was counted.
func (p *Portal) tryUnlock(r *http.Request, a attempt, passwordOK bool, tenantID, subID string, secret []byte) (bool, error) {
	ctx, now := r.Context(), p.opts.Now()
	totpKey := "owner-totp:" + tenantID
	if subID != "" {
		totpKey = "sub-totp:" + subID
	}
	if passwordOK && len(secret) > 0 {
		ok, _, err := p.limits.totp.Check(ctx, totpKey, now)
		if err != nil {
			return false, err
		}
		if ok {
			err := p.checkTOTP(ctx, tenantID, subID, secret, strings.TrimSpace(r.PostFormValue("code")))
			if err == nil {
				return true, nil
			}
			if !codeRefused(err) {
				return false, err
			}
			p.limits.totp.Fail(ctx, totpKey, now)
		}
	}
	p.limits.unlock.Fail(ctx, a.unlock, now)
	return false, nil
}

// unlockAllowed says whether the client may try an unlock now (an error:
// the store cannot tell).
func (p *Portal) unlockAllowed(ctx context.Context, a attempt) (bool, error) {
	ok, _, err := p.limits.unlock.Check(ctx, a.unlock, p.opts.Now())
	return ok, err
}
