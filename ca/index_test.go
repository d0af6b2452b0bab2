package ca

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/devicegate/devicegate/api"
)

// The CA URL answers / with its name, root fingerprint and endpoints (it
// used to be a 404); any other unknown path is still a 404.
func TestCAIndex(t *testing.T) {
	f := newFixture(t)
	base := startServer(t, f)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.Keys().RootPool()}}}
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx api.CAIndex
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d %v", resp.StatusCode, err)
	}
	if idx.RootFingerprint != Fingerprint(f.ca.Keys().Root) || idx.CAName != f.ca.Keys().Root.Subject.CommonName ||
		idx.Endpoints["root_certificates"] != api.RootsPath || idx.Endpoints["crl_pem"] != "/crl.pem" || idx.APIVersion != api.Version {
		t.Fatalf("index %+v", idx)
	}
	for _, path := range idx.Endpoints { // every GET endpoint it names answers
		if len(path) > 0 && path[0] == '/' && path != "/ocsp" {
			r, err := c.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", path, r.StatusCode)
			}
		}
	}
	r, err := c.Get(base + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("/nothing-here: %d", r.StatusCode)
	}
}
