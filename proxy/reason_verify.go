package proxy

// notVerified is the refusal page of ReasonNotVerified (seeds 001/003: a
// sub-account not verified within 7 days is frozen until the main account
// lifts the freeze; then it has 2 days). A certificate does not help here,
// so the page offers no enrollment link.
var notVerified = map[string]pageText{
	"en": {"en", "Sorry, cannot pass verification", "This sub-account is frozen because its real-person verification was not finished within 7 days. Ask the main account to lift the freeze, then finish the verification within 2 days.", "", "Reason"},
	"zh": {"zh-CN", "抱歉，无法通过验证", "该子账号超过 7 天未完成实人认证，已被冻结。请联系主账号临时解除冻结，并在 2 天内完成认证。", "", "原因"},
}
