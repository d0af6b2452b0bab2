package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{Version, true},
		{"1", true},
		{"1.0", true},
		{"1.12", true},
		{"", false},
		{"0.9", false},
		{"2.0", false},
		{"2", false},
		{"10.0", false},
		{"1.", false},
		{".1", false},
		{"1.0.0", false},
		{"v1", false},
		{" 1", false},
		{"+1", false},
		{"-1", false},
		{"1.x", false},
		{"１", false}, // a full-width digit is not a digit here
		{strings.Repeat("1", 40), false},
		{"1." + strings.Repeat("0", 40), false},
	} {
		err := CheckVersion(tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("CheckVersion(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrVersion) {
			t.Errorf("CheckVersion(%q) = %v, not ErrVersion", tc.v, err)
		}
	}
}

// A refusal says which version this program speaks and echoes at most a
// short, printable part of what it got.
func TestCheckVersionMessage(t *testing.T) {
	err := CheckVersion("2.0")
	if err == nil || !strings.Contains(err.Error(), "speaks "+Version) {
		t.Fatalf("%v", err)
	}
	err = CheckVersion("1.\x1b[31m" + strings.Repeat("x", 100))
	if err == nil || strings.ContainsRune(err.Error(), '\x1b') || len(err.Error()) > 200 {
		t.Fatalf("%q", err)
	}
}

func TestCheckHeader(t *testing.T) {
	with := func(v string) http.Header {
		h := http.Header{}
		if v != "" {
			h.Set(VersionHeader, v)
		}
		return h
	}
	for _, tc := range []struct {
		name     string
		h        http.Header
		required bool
		ok       bool
	}{
		{"current, required", with(Version), true, true},
		{"current, optional", with(Version), false, true},
		{"missing, required", with(""), true, false},
		{"missing, optional: taken as version 1", with(""), false, true},
		{"other major, optional", with("2.0"), false, false},
		{"other major, required", with("2.0"), true, false},
		{"malformed, optional", with("one"), false, false},
	} {
		if err := CheckHeader(tc.h, tc.required); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	h := http.Header{}
	SetHeader(h)
	if err := CheckHeader(h, true); err != nil {
		t.Fatalf("SetHeader then CheckHeader: %v", err)
	}
}
