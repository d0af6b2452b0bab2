package enroll

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A browser that completed a login gets a known-device entry for that
// account: a random id, an expiry and an HMAC over (account, id, expiry).
// The login lockout then counts this browser's failures on their own, so
// an attacker, even behind the same NAT address, cannot lock it out. An
// entry proves nothing for another account (the account is in the MAC,
// not in the cookie). The cookie keeps the newest few entries, so owner
// and staff logins on one shared computer both stay known.
const (
	deviceCookie     = "__Host-dg_device"
	deviceFor        = 180 * 24 * time.Hour
	maxDeviceEntries = 4
)

func (p *Portal) deviceMAC(account, id, expires string) string {
	m := hmac.New(sha256.New, p.opts.CookieKey)
	m.Write([]byte("devicegate-known-device\n" + account + "\n" + id + "\n" + expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deviceEntries are the cookie's entries that are well formed and not
// expired (their MACs are checked against an account by knownDevice).
func (p *Portal) deviceEntries(r *http.Request) [][3]string {
	c, err := r.Cookie(deviceCookie)
	if err != nil || len(c.Value) > 1024 {
		return nil
	}
	var out [][3]string
	for _, e := range strings.Split(c.Value, "~") {
		parts := strings.Split(e, ".")
		if len(parts) != 3 || len(out) == maxDeviceEntries {
			continue
		}
		exp, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || p.opts.Now().Unix() > exp {
			continue
		}
		out = append(out, [3]string{parts[0], parts[1], parts[2]})
	}
	return out
}

// knownDevice is the id of this browser for account, or "".
func (p *Portal) knownDevice(r *http.Request, account string) string {
	for _, e := range p.deviceEntries(r) {
		if hmac.Equal([]byte(e[2]), []byte(p.deviceMAC(account, e[0], e[1]))) {
			return e[0]
		}
	}
	return ""
}

// rememberDevice (after a completed login) renews this browser's entry for
// account, or adds one in front of the others.
func (p *Portal) rememberDevice(w http.ResponseWriter, r *http.Request, account string) {
	id := p.knownDevice(r, account)
	if id == "" {
		id = randomToken()[:22] // 128 bits
	}
	exp := strconv.FormatInt(p.opts.Now().Add(deviceFor).Unix(), 10)
	entries := []string{id + "." + exp + "." + p.deviceMAC(account, id, exp)}
	for _, e := range p.deviceEntries(r) {
		if e[0] != id && len(entries) < maxDeviceEntries {
			entries = append(entries, strings.Join(e[:], "."))
		}
	}
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: strings.Join(entries, "~"), Path: "/", Secure: true,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(deviceFor / time.Second)})
}
