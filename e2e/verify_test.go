package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// TestVerifyFreezeUnfreezeChromium: seeds 001/003 in Chromium against the
// real binary, built with the test-only clock (build tag
// devicegate_testclock; the production binary has none, see
// TestVerifyTestClockNotInProductionBinary). The owner creates a
// sub-account and sees its verification QR code; 7 days later the job has
// frozen it (the staff login is refused with the 7-day message); the owner
// lifts the freeze; the staff member starts and submits the verification
// (under review); the owner approves: verified.
func TestVerifyFreezeUnfreezeChromium(t *testing.T) {
	need(t, chromiumPath)
	clockFile := filepath.Join(t.TempDir(), "clock")
	var offset time.Duration
	setClock := func(d time.Duration) {
		offset = d
		if err := os.WriteFile(clockFile, []byte(d.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setClock(0)
	d := startDemoWith(t, []string{"-tags", "devicegate_testclock"}, []string{"DEVICEGATE_TESTCLOCK_FILE=" + clockFile})
	shots := newShots(t)
	home := t.TempDir()
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "certutil", "-N", "-d", nssdb, "--empty-password")
	run(t, "certutil", "-A", "-d", nssdb, "-n", "devicegate demo root", "-t", "C,,", "-i", d.info.RootCAFile)
	ownerCtx := startChromium(t, home)
	staffCtx := startChromium(t, home)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	const staffPassword = "erin-password-123"
	fakeCode := func(secret string) string {
		c, err := totp.GenerateCode(secret, time.Now().Add(offset))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	var ownerSecret, state, link string
	do(t, ownerCtx, "owner login",
		chromedp.Navigate(portal+"/owner/login"),
		chromedp.WaitVisible(chromedp.ID("store")),
		chromedp.SendKeys(chromedp.ID("store"), d.info.Store),
		chromedp.SendKeys(chromedp.ID("password"), d.info.OwnerPassword),
		chromedp.Submit(chromedp.ID("owner-login")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
		capture(&ownerSecret, chromedp.Text(chromedp.ID("totp-secret"))),
	)
	do(t, ownerCtx, "owner creates erin",
		chromedp.SendKeys(chromedp.ID("code"), fakeCode(ownerSecret)),
		chromedp.Submit(chromedp.ID("owner-totp")),
		chromedp.WaitVisible(chromedp.ID("create-sub")),
		chromedp.SendKeys(chromedp.ID("name"), "erin"),
		chromedp.Click(chromedp.ID("role-customer-service")),
		chromedp.SendKeys(chromedp.ID("new-password"), staffPassword),
		chromedp.Submit(chromedp.ID("create-sub")),
		chromedp.WaitVisible(`//td[@class="name" and text()="`+d.info.Store+`:erin"]`),
		chromedp.Click(`//tr[td[@class="name" and text()="`+d.info.Store+`:erin"]]//a`),
		chromedp.WaitVisible(chromedp.ID("verify-link")),
		capture(&state, chromedp.Text(chromedp.ID("verify-state"))),
		capture(&link, chromedp.Text(chromedp.ID("verify-link"))),
	)
	if state != "Not started" || !strings.HasPrefix(link, portal+"/verify/") {
		t.Fatalf("new sub-account: state %q, link %q", state, link)
	}
	shots.take(ownerCtx, "verify-01-owner-qr")

	// A week and an hour later: the job (every second in the test build)
	// freezes erin; the staff login says why.
	setClock(7*24*time.Hour + time.Hour)
	var refusal string
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A try may read the page while the login's answer replaces it
		// (the node it found is gone): that try is just repeated.
		step, cancel := context.WithTimeout(staffCtx, 10*time.Second)
		err := chromedp.Do(step,
			chromedp.Navigate(portal+"/staff/login"),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), d.info.Store+":erin"),
			chromedp.SendKeys(chromedp.ID("password"), staffPassword),
			chromedp.Submit(chromedp.ID("staff-login")),
			chromedp.WaitReady("body"),
			capture(&refusal, chromedp.Text("main")),
		)
		cancel()
		if err == nil && strings.Contains(refusal, "not finished within 7 days") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erin was not frozen: %q (last try: %v)", refusal, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	shots.take(staffCtx, "verify-02-staff-frozen")

	// The owner (a new login a week later) lifts the freeze.
	do(t, ownerCtx, "owner unfreezes",
		chromedp.Navigate(portal+"/owner/login"),
		chromedp.WaitVisible(chromedp.ID("store")),
		chromedp.SendKeys(chromedp.ID("store"), d.info.Store),
		chromedp.SendKeys(chromedp.ID("password"), d.info.OwnerPassword),
		chromedp.Submit(chromedp.ID("owner-login")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), fakeCode(ownerSecret)),
		chromedp.Submit(chromedp.ID("owner-totp")),
		chromedp.WaitVisible(chromedp.ID("create-sub")),
		chromedp.Click(`//tr[td[@class="name" and text()="`+d.info.Store+`:erin"]]//a`),
		chromedp.WaitVisible(chromedp.ID("verify-unfreeze")),
		chromedp.Click(chromedp.ID("verify-unfreeze")),
		// The link shows on the frozen page too: wait for the page after
		// the unfreeze (no unfreeze button) before reading the state.
		chromedp.WaitNotPresent(chromedp.ID("verify-unfreeze")),
		chromedp.WaitVisible(chromedp.ID("verify-link")),
		capture(&state, chromedp.Text(chromedp.ID("verify-state"))),
	)
	if state != "Not started" {
		t.Fatalf("after the unfreeze: %q", state)
	}
	shots.take(ownerCtx, "verify-03-owner-unfrozen")

	// Erin logs in, follows the banner, starts and submits.
	var submitted string
	do(t, staffCtx, "staff verifies",
		chromedp.Navigate(portal+"/staff/login"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), d.info.Store+":erin"),
		chromedp.SendKeys(chromedp.ID("password"), staffPassword),
		chromedp.Submit(chromedp.ID("staff-login")),
		chromedp.WaitVisible(chromedp.ID("verify-now")),
		chromedp.Click(chromedp.ID("verify-now")),
		chromedp.WaitVisible(chromedp.ID("verify-start")),
		chromedp.Click(chromedp.ID("verify-start")),
		chromedp.WaitVisible(chromedp.ID("verify-form")),
		chromedp.SendKeys(chromedp.ID("holder"), "Erin"),
		chromedp.SendKeys(chromedp.ID("id_number"), "11010519491231002X"),
		chromedp.SendKeys(chromedp.ID("phone"), "13800138000"),
		chromedp.Click(chromedp.ID("verify-submit")),
		chromedp.WaitVisible(`//p[contains(., "within 48 hours")]`),
		capture(&submitted, chromedp.Text(chromedp.ID("verify-state"))),
	)
	if submitted != "Under review" {
		t.Fatalf("after submitting: %q", submitted)
	}
	shots.take(staffCtx, "verify-04-staff-under-review")

	do(t, ownerCtx, "owner approves",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("verify-approve")),
		chromedp.Click(chromedp.ID("verify-approve")),
		chromedp.WaitVisible(chromedp.ID("verify-unbind")),
		capture(&state, chromedp.Text(chromedp.ID("verify-state"))),
	)
	if state != "Verified" {
		t.Fatalf("after approval: %q", state)
	}
	shots.take(ownerCtx, "verify-05-owner-verified")
}
