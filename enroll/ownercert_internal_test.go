package enroll

import "testing"

// TestOwnerCertMessagesComplete: every text of the owner's own certificate
// exists in both languages, none replaces a key of another table, and each
// refusal reason the gate gives has one.
func TestOwnerCertMessagesComplete(t *testing.T) {
	for k, v := range ownerCertMessages {
		if v[0] == "" || v[1] == "" {
			t.Errorf("message %q is missing a language", k)
		}
		if _, dup := messages[k]; dup {
			t.Errorf("message %q is also in messages", k)
		}
		if _, dup := verifyMessages[k]; dup {
			t.Errorf("message %q is also in verifyMessages", k)
		}
	}
	for _, k := range []string{ownerCertMissing, ownerCertOther, ownerCertRevoked, ownerCertExpired, "owner_cert_on_needs_cert", "owner_cert_on", "owner_cert_off"} {
		if _, ok := ownerCertMessages[k]; !ok {
			t.Errorf("no message %q", k)
		}
	}
}
