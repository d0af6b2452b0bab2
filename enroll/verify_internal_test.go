package enroll

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// TestVerifyMessagesComplete: every verification text exists in both
// languages, none replaces a key of the main table, and every state and
// deadline key the pages build exists.
func TestVerifyMessagesComplete(t *testing.T) {
	for k, v := range verifyMessages {
		if v[0] == "" || v[1] == "" {
			t.Errorf("message %q is missing a language", k)
		}
		if _, dup := messages[k]; dup {
			t.Errorf("message %q is in both tables", k)
		}
	}
	keys := []string{"verify_frozen", "verify_attempt_by", "verify_review_by", "verify_deadline", "verify_exempt"}
	for _, s := range []store.VerifyState{store.VerifyNotStarted, store.VerifyInProgress, store.VerifyUnderReview, store.VerifyVerified, store.VerifyRejected} {
		keys = append(keys, "verify_"+string(s))
	}
	for _, k := range keys {
		if _, ok := verifyMessages[k]; !ok {
			t.Errorf("no message %q", k)
		}
	}
}

var callbackKey = []byte("0123456789abcdef0123456789abcdef")

func signedResult(t testing.TB, r callbackResult) ([]byte, string) {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, signCallback(callbackKey, b)
}

// TestVerifyCallbackParse: only a correctly signed, well-formed result is
// read; forged, unsigned, truncated, extended or malformed ones are refused.
func TestVerifyCallbackParse(t *testing.T) {
	good := callbackResult{TenantID: "t1", SubID: "s1", Decision: "verified", Nonce: "nonce-0123456789", IssuedAt: time.Unix(1700000000, 0).UTC()}
	body, sig := signedResult(t, good)
	if got, err := parseCallback(body, sig, callbackKey); err != nil || got != good {
		t.Fatalf("good result: %+v %v", got, err)
	}
	sign := func(b string) (string, string) { return b, signCallback(callbackKey, []byte(b)) }
	unknownField, unknownSig := sign(strings.TrimSuffix(string(body), "}") + `,"admin":true}`)
	trailing, trailingSig := sign(string(body) + `{}`)
	rejectNoReason, rejectSig := signedResult(t, callbackResult{TenantID: "t1", SubID: "s1", Decision: "rejected", Nonce: "nonce-0123456789", IssuedAt: good.IssuedAt})
	otherDecision, otherSig := signedResult(t, callbackResult{TenantID: "t1", SubID: "s1", Decision: "approved", Nonce: "nonce-0123456789", IssuedAt: good.IssuedAt})
	shortNonce, shortSig := signedResult(t, callbackResult{TenantID: "t1", SubID: "s1", Decision: "verified", Nonce: "n", IssuedAt: good.IssuedAt})
	for _, tc := range []struct {
		name string
		body string
		sig  string
		want error
	}{
		{"unsigned", string(body), "", errCallbackSignature},
		{"forged", string(body), signCallback([]byte("another key, 32 bytes long......"), body), errCallbackSignature},
		{"signature of another body", strings.Replace(string(body), "verified", "rejected", 1), sig, errCallbackSignature},
		{"bare hex", string(body), strings.TrimPrefix(sig, "sha256="), errCallbackSignature},
		{"truncated signature", string(body), sig[:len(sig)-2], errCallbackSignature},
		{"unknown field", unknownField, unknownSig, errCallbackBody},
		{"trailing data", trailing, trailingSig, errCallbackBody},
		{"rejection without reason", string(rejectNoReason), rejectSig, errCallbackBody},
		{"unknown decision", string(otherDecision), otherSig, errCallbackBody},
		{"short nonce", string(shortNonce), shortSig, errCallbackBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseCallback([]byte(tc.body), tc.sig, callbackKey); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := parseCallback(body, sig, nil); !errors.Is(err, errCallbackSignature) {
		t.Fatalf("no key: %v", err)
	}
}

// FuzzVerifyCallbackParse: the parser never panics, refuses whatever is
// not signed with the key, and what it accepts holds its invariants.
func FuzzVerifyCallbackParse(f *testing.F) {
	body, sig := signedResult(f, callbackResult{TenantID: "t1", SubID: "s1", Decision: "verified", Nonce: "nonce-0123456789", IssuedAt: time.Unix(1700000000, 0).UTC()})
	f.Add(body, sig, true)
	f.Add(body, "sha256=00", false)
	f.Add([]byte(`{"tenant_id":"t","sub_id":"s","decision":"rejected","reason":"x","nonce":"0123456789abcdef","issued_at":"2024-01-01T00:00:00Z"}`), "", true)
	f.Fuzz(func(t *testing.T, body []byte, sig string, signIt bool) {
		if signIt {
			sig = signCallback(callbackKey, body)
		}
		res, err := parseCallback(body, sig, callbackKey)
		if err != nil {
			return
		}
		if sig != signCallback(callbackKey, body) {
			t.Fatalf("accepted a result with signature %q", sig)
		}
		if res.TenantID == "" || res.SubID == "" || (res.Decision != "verified" && res.Decision != "rejected") || len(res.Nonce) < 16 || res.IssuedAt.IsZero() ||
			(res.Decision == "rejected" && res.Reason == "") {
			t.Fatalf("accepted %+v", res)
		}
	})
}
