package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodePolicyPage(t *testing.T) {
	sub := `{"tenant_id":"t1","id":"s1","full_name":"shop:alice","status":"active","role":"cs","grants":["refund"],"protection":{"enabled":true,"max_devices":2}}`
	dev := `{"id":"d1","tenant_id":"t1","sub_id":"s1","serial":"ab","status":"active","expires_at":"2030-01-02T03:04:05Z"}`
	for _, tc := range []struct {
		name  string
		body  string
		since int64
		ok    bool
	}{
		{"a page", `{"seq":7,"subaccounts":[` + sub + `],"devices":[` + dev + `]}`, 3, true},
		{"nothing new", `{"seq":3,"subaccounts":[],"devices":[]}`, 3, true},
		{"a later minor version's extra field is ignored", `{"seq":7,"subaccounts":[],"devices":[],"hint":"x"}`, 3, true},
		{"seq went back", `{"seq":2,"subaccounts":[],"devices":[]}`, 3, false},
		{"trailing data", `{"seq":7} {"seq":8}`, 0, false},
		{"not JSON", `<html>`, 0, false},
		{"empty", ``, 0, false},
		{"sub-account without id", `{"seq":7,"subaccounts":[` + strings.Replace(sub, `"id":"s1"`, `"id":""`, 1) + `]}`, 0, false},
		{"sub-account without store", `{"seq":7,"subaccounts":[` + strings.Replace(sub, `"tenant_id":"t1"`, `"tenant_id":""`, 1) + `]}`, 0, false},
		{"full name without store", `{"seq":7,"subaccounts":[` + strings.Replace(sub, "shop:alice", "alice", 1) + `]}`, 0, false},
		{"full name with an empty name", `{"seq":7,"subaccounts":[` + strings.Replace(sub, "shop:alice", "shop:", 1) + `]}`, 0, false},
		{"device without sub-account", `{"seq":7,"devices":[` + strings.Replace(dev, `"sub_id":"s1"`, `"sub_id":""`, 1) + `]}`, 0, false},
		{"device without id", `{"seq":7,"devices":[` + strings.Replace(dev, `"id":"d1"`, `"id":""`, 1) + `]}`, 0, false},
		// The unversioned format (Go field names) is not read as this one.
		{"the old format", `{"seq":7,"subaccounts":[{"ID":"s1","TenantID":"t1","TenantName":"shop","Name":"alice","Status":"active"}]}`, 0, false},
	} {
		page, err := DecodePolicyPage(strings.NewReader(tc.body), tc.since)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && (page.Seq != 0 || page.SubAccounts != nil || page.Devices != nil) {
			t.Errorf("%s: a refused page returned %+v", tc.name, page)
		}
	}
}

// A page survives encoding and decoding unchanged: the names on the wire
// are the ones both ends use.
func TestPolicyPageRoundTrip(t *testing.T) {
	want := PolicyPage{Seq: 9,
		SubAccounts: []PolicySubAccount{{TenantID: "t", ID: "s", FullName: "shop:小王", Status: "frozen", Role: "finance", Grants: []string{"export"},
			Protection: Protection{Enabled: true, MaxDevices: 3}, Window: Window{NotAfter: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		Devices: []PolicyDevice{{ID: "d", TenantID: "t", SubID: "s", Serial: "1f", Status: "revoked", ExpiresAt: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "not_before") {
		t.Errorf("an unbounded side of the window is sent: %s", b)
	}
	got, err := DecodePolicyPage(strings.NewReader(string(b)), 9)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(got)
	if string(b) != string(b2) {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
}

// FuzzDecodePolicyPage: whatever a feed answer holds, decoding does not
// panic; an accepted page is not older than asked, every entry has its
// ids, and it encodes and decodes to itself.
func FuzzDecodePolicyPage(f *testing.F) {
	f.Add(`{"seq":5,"subaccounts":[{"tenant_id":"t","id":"s1","full_name":"shop:alice","status":"active","role":"cs","grants":[],"protection":{"enabled":true,"max_devices":1},"window":{"not_after":"2030-01-01T00:00:00Z"}}],"devices":[{"id":"d1","tenant_id":"t","sub_id":"s1","serial":"ab","status":"active","expires_at":"2030-01-01T00:00:00Z"}]}`, int64(3))
	f.Add(`{"seq":1}`, int64(3))
	f.Add(`{"seq":9,"devices":[{"id":""}]}`, int64(0))
	f.Add(`{"seq":"x"}`, int64(0))
	f.Add(``, int64(0))
	f.Fuzz(func(t *testing.T, body string, since int64) {
		page, err := DecodePolicyPage(strings.NewReader(body), since)
		if err != nil {
			return
		}
		if page.Seq < since {
			t.Fatalf("seq %d accepted after %d", page.Seq, since)
		}
		for _, a := range page.SubAccounts {
			if a.ID == "" || a.TenantID == "" || !strings.Contains(a.FullName, ":") {
				t.Fatalf("sub-account accepted: %+v", a)
			}
		}
		for _, d := range page.Devices {
			if d.ID == "" || d.TenantID == "" || d.SubID == "" {
				t.Fatalf("device accepted: %+v", d)
			}
		}
		b, err := json.Marshal(page)
		if err != nil {
			return // e.g. a time outside what JSON can hold
		}
		again, err := DecodePolicyPage(bytes.NewReader(b), since)
		if err != nil {
			t.Fatalf("re-encoded page refused: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(again)
		if !bytes.Equal(b, b2) {
			t.Fatalf("not stable:\n%s\n%s", b, b2)
		}
	})
}
