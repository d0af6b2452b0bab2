package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestDecodeError(t *testing.T) {
	caBody, _ := json.Marshal(ErrorBody{Error{Code: "quota_exceeded", Message: "limit", MessageZH: "上限"}})
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{"the CA's error", 403, string(caBody), Error{Status: 403, Code: "quota_exceeded", Message: "limit", MessageZH: "上限"}},
		{"an HTML page of a load balancer", 502, "<html>bad gateway</html>", Error{Status: 502, Code: CodeHTTP, Message: "HTTP 502 Bad Gateway"}},
		{"an empty body", 503, "", Error{Status: 503, Code: CodeHTTP, Message: "HTTP 503 Service Unavailable"}},
		{"an empty error object", 500, `{"error":{}}`, Error{Status: 500, Code: CodeHTTP, Message: "HTTP 500 Internal Server Error"}},
		{"terminal escapes and bidi overrides dropped", 400, `{"error":{"code":"bad\u001b[2J","message":"a\nb\u202ec","message_zh":"请求\r无效"}}`,
			Error{Status: 400, Code: "bad[2J", Message: "abc", MessageZH: "请求无效"}},
	} {
		if got := DecodeError(tc.status, []byte(tc.body)); *got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, *got, tc.want)
		}
	}
}

func TestDecodeErrorBoundsMessages(t *testing.T) {
	body, _ := json.Marshal(ErrorBody{Error{Code: "x", Message: strings.Repeat("无", 2*maxMessage)}})
	e := DecodeError(http.StatusBadRequest, body)
	if len(e.Message) > maxMessage+len("…") || !strings.HasSuffix(e.Message, "…") {
		t.Fatalf("message of %d bytes", len(e.Message))
	}
	if !strings.HasPrefix(e.Error(), "x: 无") {
		t.Fatalf("Error() = %.20q", e.Error())
	}
}
