package identity

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

func TestValidateSubName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"张三", true},
		{"客服 01", true},
		{"Ölaf-2_x.y", true},
		{"", false},
		{"a:b", false},
		{"tab\there", false},
		{"nl\n", false},
		{"bell\x07", false},
		{"rtl\u202eevil", false},
		{"zero\u200bwidth", false},
		{" lead", false},
		{"trail ", false},
		{strings.Repeat("名", 64), true},
		{strings.Repeat("名", 65), false},
		{"bad\xff", false},
	}
	for _, tc := range tests {
		if err := ValidateSubName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateSubName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestValidateStoreName(t *testing.T) {
	for name, ok := range map[string]bool{
		"demo-store": true, "shop1": true, "a_b": true, "": false, "-x": false, "Shop": false,
		"a b": false, "a:b": false, "店": false, strings.Repeat("a", 65): false,
	} {
		if err := ValidateStoreName(name); (err == nil) != ok {
			t.Errorf("ValidateStoreName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestSplitFullName(t *testing.T) {
	s, n, err := SplitFullName("demo-store:张三")
	if err != nil || s != "demo-store" || n != "张三" {
		t.Fatalf("got %q %q %v", s, n, err)
	}
	for _, bad := range []string{"nostore", ":alice", "shop:", "shop:a:b", "Shop:alice"} {
		if _, _, err := SplitFullName(bad); err == nil {
			t.Errorf("SplitFullName(%q) accepted", bad)
		}
	}
}

const td = "test.devicegate.local"

func TestParseURI(t *testing.T) {
	good := Principal{TrustDomain: td, TenantID: "t1", SubID: "s1", DeviceID: "d1"}
	p, err := ParseURI(good.URI().String(), td)
	if err != nil || p != good {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	for _, bad := range []string{
		"https://" + td + "/store/t1/sub/s1/device/d1",
		"spiffe://other.local/store/t1/sub/s1/device/d1",
		"spiffe://" + td + "/store/t1/sub/s1/device/d1/extra",
		"spiffe://" + td + "/store/t1/sub/s1/device",
		"spiffe://" + td + "/store/t1/sub/s1/device/",
		"spiffe://" + td + "/store/t%31/sub/s1/device/d1",
		"spiffe://" + td + "/store/t1/sub/s1/device/d1?x=1",
		"spiffe://" + td + "/store/t1/sub/s1/device/d1#f",
		"spiffe://user@" + td + "/store/t1/sub/s1/device/d1",
		"spiffe://" + td + ":443/store/t1/sub/s1/device/d1",
		"spiffe://" + td + "/store/T1/sub/s1/device/d1",
		"spiffe://" + td + "/store/../sub/s1/device/d1",
		"spiffe://" + td + "/proxy/edge",
		"spiffe://" + td + "/store/t1/sub/s1/device/" + strings.Repeat("a", 600),
		"spiffe:opaque",
	} {
		if _, err := ParseURI(bad, td); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
}

func cert(t *testing.T, uris []string, eku []x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	if eku == nil {
		eku = []x509.ExtKeyUsage{} // testpki reads nil as "clientAuth"
	}
	c, _ := testpki.New(t).Leaf(t, testpki.LeafOptions{CommonName: "shop:alice", URIs: uris, EKU: eku})
	return c
}

func TestFromCertificate(t *testing.T) {
	uri := Principal{TrustDomain: td, TenantID: "t1", SubID: "s1", DeviceID: "d1"}.URI().String()
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	p, err := FromCertificate(cert(t, []string{uri}, client), td)
	if err != nil || p.DeviceID != "d1" || p.DisplayName != "shop:alice" {
		t.Fatalf("good certificate: %+v %v", p, err)
	}
	for name, c := range map[string]*x509.Certificate{
		"no URI":           cert(t, nil, client),
		"two URIs":         cert(t, []string{uri, uri}, client),
		"server EKU":       cert(t, []string{uri}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}),
		"client+server":    cert(t, []string{uri}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}),
		"no EKU":           cert(t, []string{uri}, nil),
		"proxy identity":   cert(t, []string{ProxyURI(td, "edge").String()}, client),
		"other trust root": cert(t, []string{strings.Replace(uri, td, "evil.local", 1)}, client),
	} {
		if _, err := FromCertificate(c, td); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := FromCertificate(nil, td); err == nil {
		t.Error("nil certificate accepted")
	}
	name, err := ProxyFromCertificate(cert(t, []string{ProxyURI(td, "edge-1").String()}, client), td)
	if err != nil || name != "edge-1" {
		t.Fatalf("proxy certificate: %q %v", name, err)
	}
	if _, err := ProxyFromCertificate(cert(t, []string{uri}, client), td); err == nil {
		t.Fatal("device certificate accepted as a proxy")
	}
}

func TestValidateLabel(t *testing.T) {
	for label, ok := range map[string]bool{"": true, "Front desk: PC 2": true, "前台电脑": true, "x\x00": false, "<script>": true, "a\u202e": false, strings.Repeat("x", 65): false} {
		if err := ValidateLabel(label); (err == nil) != ok {
			t.Errorf("ValidateLabel(%q) = %v, want ok=%v", label, err, ok)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("spiffe://" + td + "/store/t1/sub/s1/device/d1")
	f.Add("spiffe://" + td + "/store/%2e%2e/sub/s1/device/d1")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ParseURI(raw, td)
		if err != nil {
			return
		}
		back, err := ParseURI(p.URI().String(), td)
		if err != nil || back != p {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %+v %v", raw, p, back, err)
		}
	})
}

func FuzzSplitFullName(f *testing.F) {
	f.Add("demo-store:alice")
	f.Add("shop:张三")
	f.Fuzz(func(t *testing.T, full string) {
		s, n, err := SplitFullName(full)
		if err != nil {
			return
		}
		if s+":"+n != full || strings.ContainsAny(n, ":\x00\n") {
			t.Fatalf("SplitFullName(%q) = %q, %q", full, s, n)
		}
	})
}

func FuzzValidateSubName(f *testing.F) {
	f.Add("alice")
	f.Add("a\u202eb")
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateSubName(name) == nil && (strings.ContainsRune(name, ':') || strings.TrimSpace(name) != name || name == "") {
			t.Fatalf("accepted %q", name)
		}
	})
}
