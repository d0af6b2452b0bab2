package ca

import (
	"strings"
	"testing"
)

func FuzzParseCSR(f *testing.F) {
	f.Add(newCSR(f, newKey(f), nil))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data, true)
		if err == nil && csr.CheckSignature() != nil {
			t.Fatal("ParseCSR accepted a CSR whose signature does not verify")
		}
	})
}

func FuzzHashCode(f *testing.F) {
	code, _ := newCode()
	f.Add(code)
	f.Add("dg-aaaa")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := hashCode(s)
		if err == nil && len(h) != 32 {
			t.Fatalf("hash of %d bytes", len(h))
		}
	})
}

func TestCodeRoundTrip(t *testing.T) {
	code, want := newCode()
	for _, typed := range []string{code, " " + code + " ", strings.ToLower(code), strings.ReplaceAll(code, "-", "")} {
		got, err := hashCode(typed)
		if err != nil || string(got) != string(want) {
			t.Fatalf("hashCode(%q) does not match", typed)
		}
	}
	other, _ := newCode()
	if h, _ := hashCode(other); string(h) == string(want) {
		t.Fatal("two codes share a hash")
	}
}
