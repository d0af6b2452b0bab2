package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestRefusalPageInChromium opens a high-risk page through the demo's
// proxy without a certificate in the real Chromium, in English and in
// Chinese (Accept-Language): the refusal page has the portal's look (its
// stylesheet applies under the page's CSP), the reason's sentence, the
// next step, a button to the certificate page and the reason code. The
// screenshots are the README's (DEVICEGATE_E2E_SCREENSHOTS=docs/screenshots).
func TestRefusalPageInChromium(t *testing.T) {
	for _, tool := range []string{chromiumPath, "/usr/bin/certutil"} {
		need(t, tool)
	}
	d := startDemo(t)
	shots := newShots(t)
	home := t.TempDir()
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	run(t, "mkdir", "-p", filepath.Join(home, ".pki", "nssdb"))
	run(t, "certutil", "-N", "-d", nssdb, "--empty-password")
	run(t, "certutil", "-A", "-d", nssdb, "-n", "devicegate demo root", "-t", "C,,", "-i", d.info.RootCAFile)
	ctx := startChromium(t, home)
	proxy := strings.TrimSuffix(d.info.ProxyURL, "/")
	for _, c := range []struct{ accept, title, what, shot string }{
		{"en-US,en;q=0.9", "Sorry, cannot pass verification", "this computer has not presented one", "13-refusal-page-en"},
		{"zh-CN,zh;q=0.9", "抱歉，无法通过验证", "本电脑没有出示证书", "14-refusal-page-zh"},
	} {
		var title, what, code, color string
		var href chromedp.AttributeResult
		do(t, ctx, "refusal page "+c.accept,
			setHeaders(network.Headers{"Accept-Language": c.accept}),
			chromedp.Navigate(proxy+"/orders/sold"),
			chromedp.WaitVisible(chromedp.CSS("a.button")),
			capture(&title, chromedp.Text(chromedp.CSS("h1"))),
			capture(&what, chromedp.Text(chromedp.CSS("p.what"))),
			capture(&href, chromedp.AttributeValue(chromedp.CSS("a.button"), "href")),
			capture(&code, chromedp.Text(chromedp.CSS("p.code code"))),
			capture(&color, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("a.button")).backgroundColor`)),
		)
		if title != c.title || !strings.Contains(what, c.what) || href.Value != d.info.PortalURL || code != "no_certificate" {
			t.Fatalf("%s: title %q, sentence %q, button to %q, code %q", c.accept, title, what, href.Value, code)
		}
		if color != "rgb(232, 84, 12)" { // the portal's accent: the stylesheet was not blocked
			t.Fatalf("%s: button colour %q: the page's stylesheet did not apply", c.accept, color)
		}
		shots.take(ctx, c.shot)
	}
}

// setHeaders sends extra request headers from this tab from now on.
func setHeaders(h network.Headers) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})
}
