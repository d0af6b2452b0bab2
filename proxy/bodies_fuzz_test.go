package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/config"
)

// FuzzParseWhoami: an app's whoami answer gives a user only for 200 and a
// non-empty string in the user field; anything else is "not logged in" or
// an error, never a user.
func FuzzParseWhoami(f *testing.F) {
	for _, s := range []string{`{"user":"shop:alice"}`, `{"user":""}`, `{"user":1}`, `{"user":"a","user":"b"}`, `[]`, `null`, "", `{"user":"shop:alice"} x`} {
		f.Add(200, s)
	}
	f.Add(401, `{"user":"shop:alice"}`)
	f.Add(500, `{"user":"shop:alice"}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		user, err := parseWhoami(status, []byte(body), "user")
		if err != nil {
			if user != "" {
				t.Fatalf("%d %q: user %q with error %v", status, body, user, err)
			}
			return
		}
		if status != http.StatusOK || user == "" {
			t.Fatalf("%d %q: user %q", status, body, user)
		}
		var out map[string]any
		if json.Unmarshal([]byte(body), &out) != nil || out["user"] != user {
			t.Fatalf("%d %q: user %q is not the answer's field", status, body, user)
		}
	})
}

// FuzzPolicyPage: whatever a feed page holds, decoding it and applying it
// to a snapshot does not panic, a page older than asked is refused, and
// the snapshot's seq becomes the page's.
func FuzzPolicyPage(f *testing.F) {
	f.Add(`{"seq":5,"subaccounts":[{"id":"s1","tenant_id":"t","full_name":"shop:alice","status":"active","role":"operations","protection":{"enabled":true,"max_devices":1}}],"devices":[{"id":"d1","tenant_id":"t","sub_id":"s1","serial":"ab","status":"active","expires_at":"2030-01-01T00:00:00Z"}]}`, int64(3))
	f.Add(`{"seq":1}`, int64(3))
	f.Add(`{"seq":9,"devices":[{"id":"d","tenant_id":"t","sub_id":"s"},{"id":"d","tenant_id":"t","sub_id":"s","status":"active"}]}`, int64(0))
	f.Add(`{"seq":"x"}`, int64(0))
	f.Add(``, int64(0))
	catalog, err := config.DefaultCatalog()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string, since int64) {
		page, err := api.DecodePolicyPage(bytes.NewReader([]byte(body)), since)
		if err != nil {
			return
		}
		if page.Seq < since {
			t.Fatalf("page seq %d accepted after %d", page.Seq, since)
		}
		empty := NewPolicy(nil, catalog, nil).Snapshot()
		next := empty.apply(policyChanges(page), catalog)
		if next.Seq != page.Seq {
			t.Fatalf("snapshot seq %d, page %d", next.Seq, page.Seq)
		}
	})
}
