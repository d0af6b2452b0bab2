package proxy

import (
	"html/template"
	"net/http"

	langpkg "github.com/devicegate/devicegate/internal/lang"
)

// pageText holds the user-visible texts of the seeds in both languages.
type pageText struct {
	Lang, Title, Body, Enroll, Reason string
}

var refusal = map[string]pageText{
	"en": {"en", "Sorry, cannot pass verification", "This page needs the digital certificate of the sub-account you are logged in with, installed on this computer.", "Install a certificate on this computer", "Reason"},
	"zh": {"zh-CN", "抱歉，无法通过验证", "此页面需要您登录的子账号在本电脑上安装的数字证书。", "在本电脑上安装数字证书", "原因"},
}

var unavailable = map[string]pageText{
	"en": {"en", "Temporarily unavailable", "The security policy could not be refreshed; high-risk pages are closed until it is.", "", "Reason"},
	"zh": {"zh-CN", "暂时无法访问", "安全策略暂时无法更新，高风险页面暂停访问。", "", "原因"},
}

var badRequest = map[string]pageText{
	"en": {"en", "Bad request", "The address of this request is not acceptable.", "", "Reason"},
	"zh": {"zh-CN", "请求无效", "此请求的地址无法接受。", "", "原因"},
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.T.Lang}}"><head><meta charset="utf-8"><title>{{.T.Title}}</title></head>
<body><main>
<h1>{{.T.Title}}</h1>
<p>{{.T.Body}}</p>
{{with .Hint}}<p>{{.}}</p>{{end}}
{{if and .T.Enroll .EnrollURL}}<p><a href="{{.EnrollURL}}">{{.T.Enroll}}</a></p>{{end}}
<p>{{.T.Reason}}: <code>{{.Reason}}</code></p>
</main></body></html>
`))

// lang picks zh or en from Accept-Language (first match wins).
func lang(r *http.Request) string {
	return langpkg.FromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// writePage renders a refusal page; the reason is a fixed code, never input.
func writePage(w http.ResponseWriter, r *http.Request, status int, texts map[string]pageText, reason, enrollURL string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Devicegate-Reason", reason)
	h.Set("Vary", "Accept-Language")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, map[string]any{"T": texts[lang(r)], "Reason": reason, "EnrollURL": enrollURL, "Hint": reasonHint(lang(r), reason)})
}
