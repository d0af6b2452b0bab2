// Package lang picks the user-visible language (zh-CN or English) from an
// Accept-Language header, for the portal and the proxy's refusal pages.
package lang

import (
	"strconv"
	"strings"
)

// Supported languages.
const (
	EN = "en"
	ZH = "zh"
)

// FromAcceptLanguage returns ZH or EN: the first listed language of the
// two that the browser accepts (q=0 means "not this one"); EN otherwise.
// Browsers list languages by preference, so q-values are not sorted.
func FromAcceptLanguage(header string) string {
	for part := range strings.SplitSeq(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		if refused(params) {
			continue
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			return ZH
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return EN
		}
	}
	return EN
}

// refused: a q parameter of zero.
func refused(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return err == nil && q == 0
		}
	}
	return false
}
