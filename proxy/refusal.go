package proxy

// refusalText is what the refusal page says about one Reason in one
// language: what happened, in a sentence the staff member understands,
// and what to do next. Title is the headline; empty means the seeds' "Sorry,
// cannot pass verification".
type refusalText struct {
	Title, What, Next string
}

// refusalEntry is one Reason's page: its texts in English and Chinese, and
// noEnroll when a certificate would not help (the page then has no button
// to the certificate page).
type refusalEntry struct {
	en, zh   refusalText
	noEnroll bool
}

// refusalTexts are the refusal pages per Reason. A new Reason adds one
// entry here; TestEveryReasonHasTexts fails until it has both languages.
var refusalTexts = map[Reason]refusalEntry{
	reasonUnset: {
		en: refusalText{What: "This request could not be checked.", Next: "Try again; if it keeps happening, give the reason code below to the store's administrator."},
		zh: refusalText{What: "暂时无法校验此请求。", Next: "请重试；如果一直出现，请把下方的原因代码告诉店铺管理员。"},
	},
	ReasonNoCertificate: {
		en: refusalText{What: "This page needs your sub-account's digital certificate, and this computer has not presented one.", Next: "Ask the main account for a one-time code and install a certificate on this computer on the certificate page. If it is installed, restart the browser and choose it when asked."},
		zh: refusalText{What: "此页面需要您的子账号的数字证书，而本电脑没有出示证书。", Next: "请向主账号索取一次性安装码，在数字证书页面为本电脑安装证书。如果已经安装，请重启浏览器并在提示时选择该证书。"},
	},
	ReasonBadIdentity: {
		en: refusalText{What: "The certificate this computer presented is not a device certificate of this store.", Next: "Install your sub-account's certificate from the certificate page, and choose it when the browser asks."},
		zh: refusalText{What: "本电脑出示的证书不是本店铺的设备证书。", Next: "请在数字证书页面安装您的子账号的证书，并在浏览器提示时选择该证书。"},
	},
	ReasonUnknownDevice: {
		en: refusalText{What: "The certificate on this computer has been revoked (or replaced by a newer one) and no longer opens this page.", Next: "Ask the main account for a new one-time code and install the certificate again on the certificate page."},
		zh: refusalText{What: "本电脑上的证书已被吊销（或已被新证书替换），不能再打开此页面。", Next: "请向主账号索取新的一次性安装码，在数字证书页面重新安装证书。"},
	},
	ReasonIssuerRetired: {
		en: refusalText{What: "The certificate on this computer was issued by a certificate authority that has since been retired.", Next: "Ask the main account for a new one-time code and install the certificate again on the certificate page."},
		zh: refusalText{What: "本电脑上的证书由已停用的证书颁发机构签发。", Next: "请向主账号索取新的一次性安装码，在数字证书页面重新安装证书。"},
	},
	ReasonExpired: {
		en: refusalText{What: "The certificate on this computer has expired.", Next: "Renew it on the certificate page, or ask the main account for a new one-time code."},
		zh: refusalText{What: "本电脑上的证书已过期。", Next: "请在数字证书页面续期，或向主账号索取新的一次性安装码。"},
	},
	ReasonSubInactive: {
		en: refusalText{What: "Your sub-account is frozen or no longer active in this store.", Next: "Ask the main account to restore your sub-account."},
		zh: refusalText{What: "您的子账号已被冻结或已停用。", Next: "请联系主账号恢复您的子账号。"},
	},
	ReasonNotProtected: {
		en: refusalText{What: "Certificate protection is off for your sub-account, so its certificates do not open high-risk pages.", Next: "Ask the main account to turn on certificate protection for your sub-account."},
		zh: refusalText{What: "您的子账号未开启证书保护，其证书不能打开高风险页面。", Next: "请联系主账号为您的子账号开启证书保护。"},
	},
	ReasonOutsideWindow: {
		en: refusalText{What: "This temporary sub-account is outside its validity period.", Next: "Ask the main account to extend it."},
		zh: refusalText{What: "该临时子账号不在有效期内。", Next: "如需继续使用，请联系主账号延长有效期。"},
	},
	ReasonNoPermission: {
		en: refusalText{What: "The position of this sub-account does not include the permission this page needs.", Next: "Ask the main account to add this permission to your sub-account."},
		zh: refusalText{What: "您的子账号的岗位没有此页面所需的权限。", Next: "如需使用，请联系主账号为您的子账号添加此权限。"},
	},
	ReasonNotLoggedIn: {
		en: refusalText{What: "You are not logged in to the back-office app.", Next: "Log in to the app with your sub-account first, then open this page again."},
		zh: refusalText{What: "您尚未登录后台应用。", Next: "请先用您的子账号登录应用，再打开此页面。"},
	},
	ReasonSessionMismatch: {
		en: refusalText{What: "The certificate on this computer belongs to another sub-account than the one logged in to the app.", Next: "Log in with the sub-account of this computer's certificate, or install your own certificate on this computer."},
		zh: refusalText{What: "本电脑上的证书属于另一个子账号，与当前登录应用的子账号不一致。", Next: "请用本电脑证书对应的子账号登录，或在本电脑上安装您自己的证书。"},
	},
	ReasonAmbiguousSession: {
		en: refusalText{What: "This request carried more than one login, so it cannot be tied to one sub-account.", Next: "Log out of the app, log in again with one sub-account, and open this page again."},
		zh: refusalText{What: "此请求带有多个登录状态，无法确定是哪个子账号。", Next: "请退出应用，用一个子账号重新登录后再打开此页面。"},
	},
	ReasonBindingFailed: {
		en: refusalText{What: "Your login to the app could not be checked just now.", Next: "Try again in a moment; if it keeps happening, give the reason code below to the store's administrator."},
		zh: refusalText{What: "暂时无法核对您在应用中的登录状态。", Next: "请稍后重试；如果一直出现，请把下方的原因代码告诉店铺管理员。"},
	},
	ReasonPolicyStale: {
		en:       refusalText{Title: "Temporarily unavailable", What: "The security policy could not be refreshed; high-risk pages are closed until it is.", Next: "Try again in a few minutes; other pages keep working."},
		zh:       refusalText{Title: "暂时无法访问", What: "安全策略暂时无法更新，高风险页面暂停访问。", Next: "请几分钟后重试，其他页面不受影响。"},
		noEnroll: true,
	},
	ReasonNotVerified: {
		en:       refusalText{What: "This sub-account is frozen because its real-person verification was not finished within 7 days.", Next: "Ask the main account to lift the freeze, then finish the verification within 2 days."},
		zh:       refusalText{What: "该子账号超过 7 天未完成实人认证，已被冻结。", Next: "请联系主账号临时解除冻结，并在 2 天内完成认证。"},
		noEnroll: true, // seeds 001/003: the main account lifts the freeze
	},
}

// refusalFor is the page of reason in lang ("zh" or "en") and whether it
// offers the certificate page; an unknown reason gets reasonUnset's (the
// page never goes out empty).
func refusalFor(reason Reason, lang string) (refusalText, bool) {
	e, ok := refusalTexts[reason]
	if !ok {
		e = refusalTexts[reasonUnset]
	}
	t := e.en
	if lang == "zh" {
		t = e.zh
	}
	if t.Title == "" {
		t.Title = pageChrome[lang].Refused
	}
	return t, !e.noEnroll
}
