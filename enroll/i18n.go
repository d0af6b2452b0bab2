package enroll

import (
	"net/http"
	"strings"
)

// Languages: en and zh (zh-CN). The choice is a cookie set by the switch,
// else the first supported Accept-Language tag, else English.
const langCookie = "dg_lang"

func pickLang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "en" || c.Value == "zh") {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case strings.HasPrefix(tag, "zh"):
			return "zh"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return "en"
}

// messages holds every user-visible text in both languages; one table so
// a text cannot exist in one language only.
var messages = map[string][2]string{
	"product":              {"devicegate", "devicegate"},
	"switch_lang":          {"中文", "English"},
	"logout":               {"Log out", "退出"},
	"home_title":           {"Device certificates", "数字证书"},
	"home_owner":           {"Main account (store owner)", "主账号（店主）"},
	"home_owner_hint":      {"Protect sub-accounts, choose how many computers each may use, revoke devices.", "为子账号开启保护、设置可安装证书的电脑数量、吊销设备。"},
	"home_staff":           {"Sub-account (staff)", "子账号（员工）"},
	"home_staff_hint":      {"Install the digital certificate on this computer.", "在这台电脑上安装数字证书。"},
	"owner_login_title":    {"Main account login", "主账号登录"},
	"staff_login_title":    {"Sub-account login", "子账号登录"},
	"store":                {"Store", "店铺"},
	"username":             {"Sub-account (store:name)", "子账号（店铺:名称）"},
	"password":             {"Password", "密码"},
	"login":                {"Log in", "登录"},
	"totp_code":            {"Verification code (6 digits from the phone app)", "手机验证码（手机应用中的 6 位数字）"},
	"totp_title":           {"Phone verification", "手机验证"},
	"totp_hint":            {"Enter the code shown by the authenticator app on the phone bound to this account.", "请输入绑定手机上身份验证应用显示的验证码。"},
	"verify":               {"Verify", "验证"},
	"totp_setup_title":     {"Set up phone verification for the main account", "为主账号设置手机验证"},
	"totp_setup_hint":      {"Scan the QR code with an authenticator app on your phone, then enter the code it shows. This is shown only once.", "请用手机上的身份验证应用扫描二维码，然后输入显示的验证码。二维码只显示这一次。"},
	"secret_manual":        {"Or enter this key by hand:", "或手动输入此密钥："},
	"err_login":            {"Wrong account or password.", "账号或密码错误。"},
	"err_totp":             {"The verification code is not correct.", "验证码不正确。"},
	"err_totp_reused":      {"This verification code was already used. Wait for the next one.", "该验证码已使用过，请等待下一个验证码。"},
	"err_locked":           {"Too many failed attempts. Try again later.", "失败次数过多，请稍后再试。"},
	"err_csrf":             {"The form expired. Reload the page and try again.", "表单已过期，请刷新页面后重试。"},
	"err_input":            {"The input is not valid.", "输入无效。"},
	"err_internal":         {"Something went wrong. Try again later.", "出现错误，请稍后再试。"},
	"err_not_allowed":      {"This sub-account cannot log in now. Contact the main account.", "该子账号当前无法登录，请联系主账号。"},
	"subs_title":           {"Sub-accounts", "子账号管理"},
	"search":               {"Search", "搜索"},
	"search_placeholder":   {"Name contains…", "名称包含…"},
	"name":                 {"Name", "名称"},
	"position":             {"Position", "岗位"},
	"status":               {"Status", "状态"},
	"phone_verification":   {"Phone verification", "手机验证保护"},
	"cert_protection":      {"Digital certificate protection", "数字证书保护"},
	"installed":            {"Installed", "已安装"},
	"on":                   {"On", "已开启"},
	"off":                  {"Off", "未开启"},
	"manage":               {"Security settings", "安全设置"},
	"no_subs":              {"No sub-accounts yet.", "还没有子账号。"},
	"create_sub":           {"Create a sub-account", "新建子账号"},
	"create_sub_hint":      {"The name cannot be changed later.", "名称创建后不可修改。"},
	"default_perms":        {"Default permissions of the position", "岗位默认权限"},
	"extra_perms":          {"Supplementary permissions", "补充权限"},
	"high_risk":            {"high risk", "高危"},
	"initial_password":     {"Initial password (at least 10 characters)", "初始密码（至少 10 个字符）"},
	"create":               {"Create", "创建"},
	"created":              {"Sub-account created.", "子账号已创建。"},
	"err_duplicate":        {"A sub-account with this name already exists.", "该名称的子账号已存在。"},
	"back":                 {"Back", "返回"},
	"status_active":        {"Active", "正常"},
	"status_frozen":        {"Frozen", "已冻结"},
	"status_departed":      {"Departed", "已离职"},
	"enable_phone":         {"Enable phone verification", "开启手机验证保护"},
	"reset_phone":          {"Bind a new phone", "重新绑定手机"},
	"phone_qr_hint":        {"Scan this QR code with the staff member's phone (an authenticator app). It is shown only once.", "请用员工手机上的身份验证应用扫描此二维码。二维码只显示这一次。"},
	"phone_first":          {"Enable phone verification first.", "请先开启手机验证保护。"},
	"devices_allowed":      {"Computers allowed (N)", "允许安装的电脑数（N）"},
	"enable_protection":    {"Enable certificate protection", "开启数字证书保护"},
	"change_n":             {"Change N", "修改数量"},
	"disable_protection":   {"Turn protection off", "关闭数字证书保护"},
	"devices":              {"Devices", "设备"},
	"label":                {"Label", "名称"},
	"os_browser":           {"OS / browser", "系统 / 浏览器"},
	"enrolled":             {"Enrolled", "安装时间"},
	"enrolled_from":        {"From", "来源 IP"},
	"last_seen":            {"Last seen", "最近使用"},
	"serial":               {"Serial", "序列号"},
	"expires":              {"Expires", "到期"},
	"revoke":               {"Revoke", "吊销"},
	"revoke_all":           {"Revoke all certificates", "吊销全部证书"},
	"revoked":              {"Revoked.", "已吊销。"},
	"no_devices":           {"No certificate installed yet.", "尚未安装证书。"},
	"depart":               {"Mark departed", "设为离职"},
	"depart_hint":          {"Departing revokes every certificate; the name stays reserved and settings are kept for a restore.", "设为离职会吊销全部证书；名称保留，设置保留以便恢复。"},
	"restore":              {"Restore", "恢复"},
	"freeze":               {"Freeze", "冻结"},
	"unfreeze":             {"Unfreeze", "解冻"},
	"records":              {"Operation records", "操作记录"},
	"records_all":          {"All operation records", "全部操作记录"},
	"time":                 {"Time", "时间"},
	"actor":                {"By", "操作人"},
	"action":               {"Action", "操作"},
	"target":               {"Target", "对象"},
	"outcome":              {"Result", "结果"},
	"details":              {"Details", "详情"},
	"filter":               {"Filter", "筛选"},
	"action_prefix":        {"Action starts with", "操作类型前缀"},
	"export_csv":           {"Export CSV", "导出 CSV"},
	"departed_list":        {"Departed sub-accounts", "已离职子账号"},
	"saved":                {"Saved.", "已保存。"},
	"err_below_active":     {"N cannot be lower than the number of installed certificates. Revoke devices first.", "数量不能低于已安装的证书数，请先吊销设备。"},
	"staff_home_title":     {"My digital certificate", "我的数字证书"},
	"install_here":         {"Install certificate on this computer", "在这台电脑上安装证书"},
	"my_devices":           {"My computers", "我的电脑"},
	"not_protected":        {"Certificate protection is not enabled for this sub-account yet. Ask the main account to enable it.", "主账号尚未为该子账号开启数字证书保护，请联系主账号。"},
	"enroll_title":         {"Install the digital certificate on this computer", "在这台电脑上安装数字证书"},
	"env_check":            {"System environment check", "系统环境检测"},
	"env_secure":           {"Secure connection (HTTPS)", "安全连接（HTTPS）"},
	"env_crypto":           {"Browser cryptography (WebCrypto)", "浏览器加密功能（WebCrypto）"},
	"env_cookies":          {"Cookies enabled", "已启用 Cookie"},
	"env_clock":            {"Computer clock correct", "电脑时间正确"},
	"env_fix_secure":       {"Open this page with https:// at the address the main account gave you.", "请使用主账号提供的 https:// 地址打开本页面。"},
	"env_fix_crypto":       {"Update the browser to a current Chrome, Edge, Firefox or Safari.", "请将浏览器升级到最新版的 Chrome、Edge、Firefox 或 Safari。"},
	"env_fix_cookies":      {"Allow cookies for this site in the browser settings.", "请在浏览器设置中允许本网站使用 Cookie。"},
	"env_fix_clock":        {"Set the computer's date and time automatically, then reload.", "请将电脑的日期和时间设为自动同步，然后刷新页面。"},
	"env_bad":              {"The system environment is not correct. Repair the items marked below, then reload the page.", "系统环境不正确。请按提示修复下方标出的项目，然后刷新页面。"},
	"env_ok":               {"The system environment is correct.", "系统环境正常。"},
	"device_label":         {"Name of this computer", "这台电脑的名称"},
	"p12_password":         {"Password for the certificate file (at least 8 characters)", "证书文件密码（至少 8 个字符）"},
	"p12_password_again":   {"Password again", "再次输入密码"},
	"compat":               {"Compatibility mode for older Windows (3DES)", "兼容旧版 Windows（3DES）"},
	"compat_hint":          {"Only for Windows 7 / Server 2008 R2 and older: weaker encryption of the file. Keep it off otherwise.", "仅用于 Windows 7 / Server 2008 R2 及更早版本：证书文件的加密较弱，其他情况请勿勾选。"},
	"start_install":        {"Create and download the certificate", "生成并下载证书"},
	"working":              {"Creating the key and the certificate…", "正在生成密钥和证书…"},
	"key_stays":            {"The private key is created in this browser and never leaves it.", "私钥在本浏览器中生成，不会离开本电脑。"},
	"download":             {"Download the certificate file again", "再次下载证书文件"},
	"issued":               {"The certificate was issued and downloaded.", "证书已签发并下载。"},
	"install_steps":        {"Install the downloaded file", "安装下载的证书文件"},
	"steps_windows":        {"Windows: double-click the .p12 file, choose \"Current user\", enter the password, and keep the default store.", "Windows：双击 .p12 文件，选择“当前用户”，输入密码，使用默认的证书存储。"},
	"steps_macos":          {"macOS: double-click the .p12 file, add it to the \"login\" keychain, and enter the password.", "macOS：双击 .p12 文件，添加到“登录”钥匙串，并输入密码。"},
	"steps_linux":          {"Linux (Chrome/Chromium): pk12util -d sql:$HOME/.pki/nssdb -i devicegate.p12", "Linux（Chrome/Chromium）：pk12util -d sql:$HOME/.pki/nssdb -i devicegate.p12"},
	"steps_firefox":        {"Firefox: Settings → Privacy & Security → Certificates → View Certificates → Your Certificates → Import.", "Firefox：设置 → 隐私与安全 → 证书 → 查看证书 → 您的证书 → 导入。"},
	"steps_restart":        {"Then restart the browser.", "然后重新启动浏览器。"},
	"check_install":        {"Check installation", "检测安装"},
	"check_ok":             {"The certificate is installed and valid.", "证书已安装且有效。"},
	"check_fail":           {"No valid certificate was presented. Install the file, restart the browser and check again.", "未检测到有效证书。请安装证书文件，重启浏览器后再检测。"},
	"err_password_short":   {"The password must have at least 8 characters.", "密码至少需要 8 个字符。"},
	"err_password_differs": {"The passwords do not match.", "两次输入的密码不一致。"},
	"device_status_active": {"Active", "有效"},
	"device_status_other":  {"Revoked or expired", "已吊销或已过期"},
	"confirm_revoke":       {"Revoke this certificate? The computer loses access to high-risk pages at once.", "确定吊销该证书吗？这台电脑将立即无法访问高危页面。"},
}

// catalogs builds the per-language lookup the templates use as .L.
func catalogs() map[string]map[string]string {
	out := map[string]map[string]string{"en": {}, "zh": {}}
	for k, v := range messages {
		out["en"][k] = v[0]
		out["zh"][k] = v[1]
	}
	return out
}
