package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"testing"
)

type rawCSR struct {
	TBS       asn1.RawValue
	Algorithm asn1.RawValue
	Signature asn1.BitString
}

type rawTBS struct {
	Version    int
	Subject    asn1.RawValue
	SPKI       asn1.RawValue
	Attributes asn1.RawValue `asn1:"optional,tag:0"`
}

// swappedKeyCSR builds a CSR that carries key A's public key but is signed
// with key B: a "CSR for another key".
func swappedKeyCSR(t *testing.T) []byte {
	t.Helper()
	keyA, keyB := newKey(t), newKey(t)
	block, _ := pem.Decode(newCSR(t, keyB, nil))
	var csr rawCSR
	if _, err := asn1.Unmarshal(block.Bytes, &csr); err != nil {
		t.Fatal(err)
	}
	var tbs rawTBS
	if _, err := asn1.Unmarshal(csr.TBS.FullBytes, &tbs); err != nil {
		t.Fatal(err)
	}
	spkiA, err := x509.MarshalPKIXPublicKey(keyA.Public())
	if err != nil {
		t.Fatal(err)
	}
	tbs.SPKI = asn1.RawValue{FullBytes: spkiA}
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := keyB.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(rawCSR{TBS: asn1.RawValue{FullBytes: tbsDER}, Algorithm: csr.Algorithm, Signature: asn1.BitString{Bytes: sig, BitLength: len(sig) * 8}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificateRequest(out)
	if err != nil {
		t.Fatalf("swapped CSR does not parse: %v", err)
	}
	if !parsed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(keyA.Public()) {
		t.Fatal("swapped CSR does not carry key A")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: out})
}
