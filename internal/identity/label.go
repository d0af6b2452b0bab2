package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateLabel checks a free-text device label ("Front desk PC"): printable
// Unicode, at most MaxNameRunes, no control or format characters. Invalid
// UTF-8 is refused, and so is U+FFFD: JSON decoders and encoders silently
// turn invalid bytes into it, and a label must be stored as typed or not
// at all.
func ValidateLabel(label string) error {
	if !utf8.ValidString(label) {
		return errors.New("label is not valid UTF-8")
	}
	if strings.ContainsRune(label, utf8.RuneError) {
		return errors.New("label is not valid UTF-8 (it contains U+FFFD, the replacement character)")
	}
	if utf8.RuneCountInString(label) > MaxNameRunes {
		return fmt.Errorf("label is longer than %d characters", MaxNameRunes)
	}
	if strings.TrimSpace(label) != label {
		return errors.New("label starts or ends with a space")
	}
	for _, r := range label {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || (!unicode.IsPrint(r) && r != ' ') {
			return fmt.Errorf("label contains control or non-printable character %U", r)
		}
	}
	return nil
}
