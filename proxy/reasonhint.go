package proxy

// reasonHints explain, under the refusal page's fixed text, the reasons a
// user can do something about, in both languages (en, zh).
var reasonHints = map[string][2]string{
	ReasonOutsideWindow.String(): {
		"This temporary sub-account is outside its validity period. Ask the main account to extend it.",
		"该临时子账号不在有效期内，如需继续使用，请联系主账号延长有效期。"},
	ReasonNoPermission.String(): {
		"The position of this sub-account does not include this permission. Ask the main account to add it.",
		"该子账号的岗位没有此权限，如需使用，请联系主账号添加权限。"},
}

// reasonHint is the hint for reason in lang ("" when there is none).
func reasonHint(lang, reason string) string {
	h, ok := reasonHints[reason]
	if !ok {
		return ""
	}
	if lang == "zh" {
		return h[1]
	}
	return h[0]
}
