package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"

	langpkg "github.com/devicegate/devicegate/internal/lang"
)

// chrome is the page's fixed words in one language.
type chrome struct {
	HTMLLang, Refused, Next, Enroll, Code string
}

var pageChrome = map[string]chrome{
	"en": {"en", "Sorry, cannot pass verification", "What to do:", "Go to the certificate page", "Reason code (for support)"},
	"zh": {"zh-CN", "抱歉，无法通过验证", "怎么办：", "前往数字证书页面", "原因代码（供客服排查）"},
}

// badRequestTexts are the pages of requests refused before any decision
// (a malformed host, path or body).
var badRequestTexts = map[string]refusalText{
	"en": {Title: "Bad request", What: "The address of this request is not acceptable."},
	"zh": {Title: "请求无效", What: "此请求的地址无法接受。"},
}

// pageCSS is the portal's look (enroll/static/app.css: colours, header,
// panel, button), inline: the page is served by the proxy, on another
// origin than the portal. The CSP allows exactly this stylesheet.
const pageCSS = `:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--accent:#e8540c;--bad:#b42318;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;color:var(--fg);background:var(--bg)}
.top{display:flex;align-items:center;padding:.6rem 1.5rem;background:#fff;border-bottom:1px solid var(--line)}
.brand{font-weight:700;color:var(--accent);font-size:1.1rem}
main{max-width:40rem;margin:2.5rem auto;padding:0 1.5rem}
.panel{background:#fff;border:1px solid var(--line);border-top:4px solid var(--bad);border-radius:8px;padding:1.25rem 1.5rem}
h1{font-size:1.4rem;margin:.2rem 0 .8rem}
.next strong{display:block}
.button{font:inherit;padding:.5rem 1.1rem;border-radius:6px;background:var(--accent);color:#fff;text-decoration:none;display:inline-block}
.button:focus{outline:3px solid #8ab4f8;outline-offset:1px}
.code{margin-top:1.5rem;font-size:.8rem;color:var(--muted)}`

var (
	pageCSP = func() string {
		sum := sha256.Sum256([]byte(pageCSS))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'"
	}()
	pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.C.HTMLLang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.T.Title}}</title><style>` + pageCSS + `</style></head>
<body>
<header class="top"><span class="brand">devicegate</span></header>
<main><div class="panel">
<h1>{{.T.Title}}</h1>
<p class="what">{{.T.What}}</p>
{{with .T.Next}}<p class="next"><strong>{{$.C.Next}}</strong>{{.}}</p>{{end}}
{{with .EnrollURL}}<p><a class="button" href="{{.}}">{{$.C.Enroll}}</a></p>{{end}}
<p class="code">{{.C.Code}}: <code>{{.Reason}}</code></p>
</div></main>
</body></html>
`))
)

// lang picks zh or en from Accept-Language (first match wins).
func lang(r *http.Request) string {
	return langpkg.FromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// writeRefusal renders the refusal page of a decision: the reason's
// sentence and next step in the visitor's language, a button to the
// certificate (enrollment) page, the reason code small.
func writeRefusal(w http.ResponseWriter, r *http.Request, status int, reason Reason, enrollURL string) {
	t, enroll := refusalFor(reason, lang(r))
	if !enroll {
		enrollURL = ""
	}
	writePage(w, r, status, t, reason.String(), enrollURL)
}

// writeBadRequest renders the page of a request refused before any decision.
func writeBadRequest(w http.ResponseWriter, r *http.Request, status int, code string) {
	writePage(w, r, status, badRequestTexts[lang(r)], code, "")
}

// writePage renders a page; the reason is a fixed code, never input.
func writePage(w http.ResponseWriter, r *http.Request, status int, t refusalText, reason, enrollURL string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Devicegate-Reason", reason)
	h.Set("Vary", "Accept-Language")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, map[string]any{"C": pageChrome[lang(r)], "T": t, "Reason": reason, "EnrollURL": enrollURL})
}
