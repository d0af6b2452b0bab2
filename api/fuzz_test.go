package api

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzCheckVersion: whatever a peer states, CheckVersion does not panic,
// accepts only "1" or "1.N" in ASCII digits, and its refusal echoes
// nothing unprintable.
func FuzzCheckVersion(f *testing.F) {
	for _, s := range []string{Version, "1", "2.0", "", "1.", "01.0", "1.0.0", "\x1b", "9999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := CheckVersion(v)
		if err == nil {
			maj, minor, _ := strings.Cut(v, ".")
			if strings.TrimLeft(maj, "0") != "1" || strings.Trim(minor, "0123456789") != "" {
				t.Fatalf("accepted %q", v)
			}
			return
		}
		for _, r := range err.Error() {
			if unicode.IsControl(r) {
				t.Fatalf("refusal of %q echoes a control character: %q", v, err)
			}
		}
	})
}

// FuzzDecodeError: any answer body gives an *Error with the status, a
// code, and texts without control characters.
func FuzzDecodeError(f *testing.F) {
	f.Add(403, `{"error":{"code":"quota_exceeded","message":"m","message_zh":"上限"}}`)
	f.Add(502, `<html>`)
	f.Add(500, `{"error":{"message":"\u001b]0;x\u0007"}}`)
	f.Add(400, `{"error":null}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := DecodeError(status, []byte(body))
		if e == nil || e.Status != status || e.Code == "" && e.Message == "" {
			t.Fatalf("%q: %+v", body, e)
		}
		for _, s := range []string{e.Code, e.Message, e.MessageZH} {
			if len(s) > maxMessage+len("…") {
				t.Fatalf("%d bytes kept", len(s))
			}
			for _, r := range s {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("%q kept %q", body, s)
				}
			}
		}
	})
}
