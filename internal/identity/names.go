// Package identity is the one place that maps certificates to principals
// and back, and that decides what a valid store or sub-account name is.
package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameRunes bounds store and sub-account names.
const MaxNameRunes = 64

var errEmptyName = errors.New("name is empty")

// ValidateStoreName checks a store (tenant) name: it appears in "store:name"
// and in URLs, so it is restricted to lower-case ASCII letters, digits, '-'
// and '_', starting with a letter or digit.
func ValidateStoreName(name string) error {
	if name == "" {
		return errEmptyName
	}
	if len(name) > MaxNameRunes {
		return fmt.Errorf("store name is longer than %d characters", MaxNameRunes)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return fmt.Errorf("store name %q: only a-z, 0-9, '-' and '_' are allowed, starting with a letter or digit", name)
		}
	}
	return nil
}

// ValidateSubName checks the part of a sub-account name after "store:".
// Unicode letters are allowed (staff names are often Chinese); control and
// format characters, ':' and surrounding spaces are refused.
func ValidateSubName(name string) error {
	if name == "" {
		return errEmptyName
	}
	if !utf8.ValidString(name) {
		return errors.New("sub-account name is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxNameRunes {
		return fmt.Errorf("sub-account name is longer than %d characters", MaxNameRunes)
	}
	if strings.TrimSpace(name) != name {
		return errors.New("sub-account name starts or ends with a space")
	}
	for _, r := range name {
		switch {
		case r == ':':
			return errors.New("sub-account name must not contain ':'")
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("sub-account name contains control character %U", r)
		case r == utf8.RuneError:
			return errors.New("sub-account name is not valid UTF-8")
		case !unicode.IsPrint(r) && r != ' ':
			return fmt.Errorf("sub-account name contains non-printable character %U", r)
		}
	}
	return nil
}

// SplitFullName splits "store:name" and validates both parts.
func SplitFullName(full string) (store, name string, err error) {
	store, name, ok := strings.Cut(full, ":")
	if !ok {
		return "", "", fmt.Errorf("%q is not of the form store:name", full)
	}
	if err := ValidateStoreName(store); err != nil {
		return "", "", err
	}
	if err := ValidateSubName(name); err != nil {
		return "", "", err
	}
	return store, name, nil
}
