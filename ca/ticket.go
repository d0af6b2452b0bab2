package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/devicegate/devicegate/store"
)

// A one-time enrollment code is 160 random bits in base32, grouped for
// reading aloud: DG-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX. Only its
// SHA-256 is stored.
const (
	codePrefix    = "DG-"
	codeRandBytes = 20
	codeChars     = 32 // base32 of 20 bytes, no padding
)

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrCodeMalformed is returned for input that cannot be an enrollment code.
var ErrCodeMalformed = errors.New("enrollment code is malformed")

func newCode() (code string, hash []byte) {
	var b [codeRandBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("devicegate: crypto/rand failed: " + err.Error())
	}
	raw := codeEncoding.EncodeToString(b[:])
	var sb strings.Builder
	sb.WriteString(codePrefix)
	for i := 0; i < len(raw); i += 4 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(raw[i : i+4])
	}
	sum := sha256.Sum256([]byte(raw))
	return sb.String(), sum[:]
}

// hashCode normalizes a typed code (case, dashes, spaces, optional prefix)
// and returns the hash under which it is stored.
func hashCode(code string) ([]byte, error) {
	if len(code) > 128 {
		return nil, ErrCodeMalformed
	}
	// Upper case without dashes and spaces, in one pass (a strings.Replacer
	// built per call cost 6.6 KB of garbage per enrollment).
	c := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return unicode.ToUpper(r)
	}, code)
	if len(c) == len(codePrefix)-1+codeChars {
		c = strings.TrimPrefix(c, codePrefix[:len(codePrefix)-1])
	}
	if len(c) != codeChars {
		return nil, ErrCodeMalformed
	}
	if _, err := codeEncoding.DecodeString(c); err != nil {
		return nil, ErrCodeMalformed
	}
	sum := sha256.Sum256([]byte(c))
	return sum[:], nil
}

// CreateTicket issues a one-time enrollment code for a sub-account. The code
// is returned once and never stored.
func (a *Authority) CreateTicket(ctx context.Context, tenantID, subID string, actor store.Actor) (string, time.Time, error) {
	code, hash := newCode()
	expires := a.now().Add(a.opts.TicketTTL)
	err := a.store.CreateTicket(ctx, store.NewTicket{TenantID: tenantID, SubID: subID, Hash: hash, ExpiresAt: expires}, actor)
	if err != nil {
		return "", time.Time{}, err
	}
	return code, expires, nil
}
