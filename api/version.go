// Package api is the wire protocol between devicegate's CA, portal, edge
// proxies and CLI: every body that crosses a process boundary, with
// explicit JSON names, and the protocol version both ends check. One file
// per protocol: enroll.go (enrollment and renewal, the portal's browser
// enrollment), feed.go (the policy and revocation feeds), proxycert.go (a
// proxy's own certificate renewal), upload.go (a proxy's audit and
// last-seen uploads), errors.go (every error answer).
//
// The package imports nothing of devicegate: a store type may change
// without changing the wire, and each end converts at its boundary.
package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Version is the protocol this build speaks, "major.minor". Within a major
// version answers may gain fields (clients ignore unknown ones) and
// requests do not change (the CA refuses unknown fields); a new major
// version changes or removes something, and a peer refuses a major version
// it does not know.
const Version = "1.0"

// major is Version's major number.
const major = 1

// VersionHeader carries Version on every request of a devicegate program
// and on every answer of the CA and the portal.
const VersionHeader = "Devicegate-Api-Version"

// ErrVersion is the refusal of a version this build does not speak.
var ErrVersion = errors.New("unsupported devicegate API version")

// maxVersionLen bounds what CheckVersion reads of a header.
const maxVersionLen = 16

// CheckVersion accepts a version of this build's major ("1" or "1.N") and
// refuses anything else, an empty or malformed value included: a body
// whose format is not known is not read at all (fail closed).
func CheckVersion(v string) error {
	if v == "" {
		return fmt.Errorf("%w: no %s header (this program speaks %s)", ErrVersion, VersionHeader, Version)
	}
	m, err := parseMajor(v)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not major.minor (this program speaks %s)", ErrVersion, VersionHeader, clip(v), Version)
	}
	if m != major {
		return fmt.Errorf("%w %d (this program speaks %s; upgrade the older side)", ErrVersion, m, Version)
	}
	return nil
}

// CheckHeader checks the version a request or an answer states. required
// says whether a missing header is refused: the routes only devicegate's
// own programs call require it; the public enrollment routes take a
// request without one as version 1, the format they had before versions.
func CheckHeader(h http.Header, required bool) error {
	v := h.Get(VersionHeader)
	if v == "" && !required {
		return nil
	}
	return CheckVersion(v)
}

// SetHeader states this build's version on a request or an answer.
func SetHeader(h http.Header) { h.Set(VersionHeader, Version) }

// parseMajor reads "M" or "M.N" (decimal digits only) and returns M.
func parseMajor(v string) (int, error) {
	if len(v) > maxVersionLen {
		return 0, errors.New("too long")
	}
	maj, minor, dotted := strings.Cut(v, ".")
	if !digits(maj) || dotted && !digits(minor) {
		return 0, errors.New("not major.minor")
	}
	return strconv.Atoi(maj)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip keeps an echoed value short and printable.
func clip(s string) string {
	if len(s) > maxVersionLen {
		s = s[:maxVersionLen] + "…"
	}
	return printable(s)
}
