// Package secrets hashes passwords and manages the local sealing key.
package secrets

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters (RFC 9106 second recommended option, lighter memory).
const (
	argonTime    = 2
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	saltLen      = 16
	// MinPasswordLen is the shortest password accepted for new logins.
	MinPasswordLen = 10
	maxPasswordLen = 1024
)

var b64 = base64.RawStdEncoding

// ErrPasswordPolicy is returned for passwords that are too short or long.
var ErrPasswordPolicy = fmt.Errorf("password must be %d..%d characters", MinPasswordLen, maxPasswordLen)

// HashPassword returns an argon2id hash in PHC string format.
func HashPassword(pw string) (string, error) {
	if len(pw) < MinPasswordLen || len(pw) > maxPasswordLen {
		return "", ErrPasswordPolicy
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks pw against a PHC argon2id hash in constant time.
func VerifyPassword(hash, pw string) (bool, error) {
	if len(pw) > maxPasswordLen {
		return false, nil
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var version int
	var mem uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return false, errors.New("bad argon2 parameters")
	}
	if mem == 0 || mem > 1<<21 || t == 0 || t > 16 || p == 0 {
		return false, errors.New("argon2 parameters out of range")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errors.New("bad argon2 salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false, errors.New("bad argon2 hash")
	}
	got := argon2.IDKey([]byte(pw), salt, t, mem, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// RandomPassword returns 20 characters from an unambiguous 56-letter
// alphabet (about 116 bits), for generated first-login credentials.
func RandomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	out := make([]byte, 0, 20)
	var b [1]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(b[:]); err != nil {
			panic("devicegate: crypto/rand failed: " + err.Error())
		}
		// Rejection sampling: 224 = 4*56, so accepted bytes are unbiased.
		if int(b[0]) < 4*len(alphabet) {
			out = append(out, alphabet[int(b[0])%len(alphabet)])
		}
	}
	return string(out)
}
