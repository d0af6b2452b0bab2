package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

// Error is the error answer of every JSON endpoint of the CA and the
// portal, in both languages. Code is stable (programs branch on it);
// Message and MessageZH are for people (the CLI and the portal show them
// as they are, e.g. the limit message of seed 000).
type Error struct {
	Status    int    `json:"-"` // the HTTP status the answer is sent with
	Code      string `json:"code"`
	Message   string `json:"message"`
	MessageZH string `json:"message_zh"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorBody is the JSON body of an error answer: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// CodeHTTP is the code of an error answer that carried no Error body (a
// load balancer's page, an empty 502).
const CodeHTTP = "http"

// maxMessage bounds each text field of a decoded error.
const maxMessage = 1024

// DecodeError reads the error answer of a request that got status: the
// CA's or portal's Error, or for any other body an Error with code "http"
// naming the status. Its texts are bounded and stripped of control
// characters, so a terminal or a log line shows them safely.
func DecodeError(status int, body []byte) *Error {
	var b ErrorBody
	_ = json.Unmarshal(body, &b) // not an ErrorBody: the status speaks
	e := &Error{Status: status, Code: bound(b.Error.Code), Message: bound(b.Error.Message), MessageZH: bound(b.Error.MessageZH)}
	if e.Code == "" {
		e.Code = CodeHTTP
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	}
	return e
}

func bound(s string) string {
	if len(s) > maxMessage {
		s = strings.ToValidUTF8(s[:maxMessage], "") + "…"
	}
	return printable(s)
}

// printable drops control and format characters (terminal escapes,
// newlines that would forge log lines, bidirectional overrides).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}
