package enroll

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// view is what every template gets. Texts come from .L (the language's
// message table); everything else is data, escaped by html/template.
type view struct {
	L        map[string]string
	Lang     string
	Path     string // the current path, for the language switch
	CSRF     string
	Who      string // logged-in name, if any
	Kind     string // owner | staff
	Notice   string
	Error    string
	ProxyURL string
	Now      int64 // server time, ms since epoch (clock-skew check)
	Data     any
}

// pages are the parsed templates: layout + one page each.
type pages struct {
	byName map[string]*template.Template
	texts  map[string]map[string]string
}

var templateFuncs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"join": strings.Join,
}

func parsePages() (*pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}, texts: catalogs()}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		p.byName[base] = t
	}
	return p, nil
}

// render writes a page whole or not at all: it is executed into a buffer
// first, and a template that fails is logged and answered with
// failedPage (500), never with the part written before the failure.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	lang := pickLang(r)
	v.Lang, v.L, v.Path, v.ProxyURL = lang, p.pages.texts[lang], r.URL.Path, p.opts.ProxyURL
	v.Now = p.opts.Now().UnixMilli()
	if s, _ := p.loadSession(r); s != nil && s.step == stepDone {
		v.Who, v.Kind = s.name, s.kind
		if v.CSRF == "" {
			v.CSRF = s.csrf
		}
	}
	var buf bytes.Buffer
	err := errNoPage
	if t := p.pages.byName[name]; t != nil {
		err = t.Execute(&buf, v)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		p.opts.Log.Error("portal page failed", "page", name, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, failedPage)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var errNoPage = errors.New("no such page")

// failedPage is the answer when a page cannot be rendered: plain, in both
// languages, with nothing from the request or the failure in it.
const failedPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>devicegate</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header class="top"><a class="brand" href="/">devicegate</a></header>
<main>
<p class="error" role="alert" id="page-error">Something went wrong. Try again later.</p>
<p class="error" lang="zh-CN">出现错误，请稍后再试。</p>
</main>
</body>
</html>
`

// sessionKey marks the request's session in its context once loaded.
type sessionKey struct{}

// loadSession returns the request's live session (nil: none) and the
// request carrying it, so that what runs after (the handler, render) does
// not read it from the store again.
func (p *Portal) loadSession(r *http.Request) (*session, *http.Request) {
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		return s, r
	}
	s := p.sessions.get(r)
	return s, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
}

// fail answers with a message page (key of the message table).
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, status int, key string) {
	if isPageAPI(r) {
		writeError(w, status, key, p.pages.texts["en"][key], p.pages.texts["zh"][key])
		return
	}
	p.render(w, r, status, "message", view{Error: p.pages.texts[pickLang(r)][key]})
}

// isPageAPI: the request is a page script's JSON call, answered in JSON.
func isPageAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/staff/api/") || strings.HasPrefix(r.URL.Path, "/owner/api/")
}

// text is one message in the request's language.
func (p *Portal) text(r *http.Request, key string) string { return p.pages.texts[pickLang(r)][key] }

// staticHandler serves the embedded CSS and scripts.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
