package enroll

// ownerCertMessages are the texts of the owner's own certificate (issue 13
// item 4), merged into the message table by catalogs.
var ownerCertMessages = map[string][2]string{
	"owner_certs_title":        {"My computers (main account certificate)", "我的电脑（主账号数字证书）"},
	"owner_certs_hint":         {"Install the digital certificate on the computers you manage the store from. When it is required, every page and action of the main account needs one of them.", "在您管理店铺的电脑上安装数字证书。开启要求后，主账号的每个页面和操作都需要其中一台电脑的证书。"},
	"owner_certs_nav":          {"My computers", "我的电脑"},
	"owner_enroll_title":       {"Install the main account's certificate on this computer", "在这台电脑上安装主账号数字证书"},
	"owner_cert_required":      {"Require the main account's certificate", "要求主账号数字证书"},
	"owner_cert_is_on":         {"Required: owner pages open only on a computer with the main account's certificate, at the owner console.", "已开启：主账号页面只能在装有主账号证书的电脑上通过店主控制台打开。"},
	"owner_cert_is_off":        {"Not required.", "未开启。"},
	"owner_cert_turn_on":       {"Turn on", "开启"},
	"owner_cert_turn_off":      {"Turn off", "关闭"},
	"owner_cert_on_hint":       {"Turn it on from the owner console on a computer where the certificate is installed; it asks for a new code from your phone. Install on another computer while it is off (or from the CA host: devicegate admin owner cert-required STORE --off).", "请在已安装证书的电脑上通过店主控制台开启，需要输入手机上的新验证码。在其他电脑上安装证书时请先关闭要求（或在 CA 主机上执行 devicegate admin owner cert-required STORE --off）。"},
	"owner_console":            {"Owner console (asks for the certificate)", "店主控制台（需要证书）"},
	"owner_this_computer":      {"this computer", "当前电脑"},
	"owner_install":            {"Install on this computer", "在这台电脑上安装"},
	"owner_cert_on":            {"The main account's certificate is now required.", "已开启主账号数字证书要求。"},
	"owner_cert_off":           {"The main account's certificate is no longer required.", "已关闭主账号数字证书要求。"},
	"owner_cert_missing":       {"This page needs the main account's digital certificate, and this browser did not present one. Open the owner console on a computer where it is installed.", "此页面需要主账号数字证书，但浏览器没有提供证书。请在已安装证书的电脑上打开店主控制台。"},
	"owner_cert_other":         {"The certificate this browser presented is not a main account certificate of this store (a sub-account's or another store's). Choose the main account's certificate.", "浏览器提供的证书不是本店铺主账号的数字证书（子账号或其他店铺的证书）。请选择主账号的证书。"},
	"owner_cert_revoked":       {"The main account certificate of this computer was revoked. Use another computer with the certificate, or ask the administrator to turn the requirement off.", "这台电脑上的主账号数字证书已被吊销。请使用其他装有证书的电脑，或请管理员关闭该要求。"},
	"owner_cert_expired":       {"The main account certificate of this computer has expired. Use another computer with the certificate, or ask the administrator to turn the requirement off.", "这台电脑上的主账号数字证书已过期。请使用其他装有证书的电脑，或请管理员关闭该要求。"},
	"owner_cert_on_needs_cert": {"To turn the requirement on, open this page at the owner console on a computer where the main account's certificate is installed.", "要开启该要求，请在已安装主账号证书的电脑上通过店主控制台打开此页面。"},
}
