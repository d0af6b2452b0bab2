package identity

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Invalid UTF-8 and the replacement character it turns into when a JSON
// decoder or json.Marshal repairs it are both refused: a label is stored
// exactly as the user typed it or not at all.
func TestValidateLabelUTF8(t *testing.T) {
	for _, tc := range []struct {
		name, label string
		ok          bool
		want        string // part of the error
	}{
		{"plain", "Front desk PC", true, ""},
		{"chinese", "前台电脑 2", true, ""},
		{"emoji", "Kasse 🖥", true, ""},
		{"invalid byte", "front\xffdesk", false, "not valid UTF-8"},
		{"truncated sequence", "前\xe5\x8f", false, "not valid UTF-8"},
		{"overlong encoding", "\xc0\xaf", false, "not valid UTF-8"},
		{"surrogate half", "\xed\xa0\x80", false, "not valid UTF-8"},
		{"replacement character", "front\uFFFDdesk", false, "U+FFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateLabel(tc.label)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateLabel(%q) = %v, want ok=%v", tc.label, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateLabel(%q) = %q, want it to mention %q", tc.label, err, tc.want)
			}
		})
	}
}

func FuzzValidateLabel(f *testing.F) {
	for _, s := range []string{"", "Front desk: PC 2", "前台电脑", "x\x00", "a\u202e", "front\xffdesk", "\uFFFD", " pad ", strings.Repeat("界", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		if ValidateLabel(label) != nil {
			return
		}
		if !utf8.ValidString(label) || strings.ContainsRune(label, utf8.RuneError) {
			t.Fatalf("accepted %q: not valid UTF-8 or repaired by a decoder", label)
		}
		if utf8.RuneCountInString(label) > MaxNameRunes || strings.TrimSpace(label) != label {
			t.Fatalf("accepted %q: too long or padded", label)
		}
		for _, r := range label {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q: control or format character %U", label, r)
			}
		}
	})
}
