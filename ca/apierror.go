package ca

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// The limit message of seed 000, shown verbatim by the CLI and the portal.
const (
	QuotaMessageEN = "The number of installed certificates has reached the limit. Contact the main account."
	QuotaMessageZH = "您安装的数字证书已达上限，如需安装请联系主账号"
)

// Explain maps a domain error to the client-facing error of every CA
// endpoint, also what the portal shows for a refused enrollment. Unknown
// errors become a generic 500: internal details are logged, never sent.
func Explain(err error) api.Error {
	var ne *store.NotEligibleError
	var be *store.BelowActiveError
	var early *RenewTooEarlyError
	var rate *RenewRateError
	switch {
	case errors.As(err, &rate):
		return apiErr(http.StatusTooManyRequests, "renew_rate_limited", err.Error(), "证书续期过于频繁，请稍后再试")
	case errors.As(err, &early):
		return apiErr(http.StatusForbidden, "renew_too_early", err.Error(), "证书临近到期（最后 30 天内）才能续期；如需提前续期，请联系主账号允许该设备提前续期一次")
	case errors.Is(err, store.ErrQuotaExceeded):
		return apiErr(http.StatusForbidden, "quota_exceeded", QuotaMessageEN, QuotaMessageZH)
	case errors.Is(err, store.ErrTicketExpired):
		return apiErr(http.StatusForbidden, "ticket_expired", "The enrollment code has expired. Ask the main account for a new one.", "安装码已过期，请联系主账号重新获取")
	case errors.Is(err, store.ErrTicketUsed):
		return apiErr(http.StatusForbidden, "ticket_used", "The enrollment code was already used. Ask the main account for a new one.", "安装码已被使用，请联系主账号重新获取")
	case errors.Is(err, store.ErrTicketUnknown), errors.Is(err, ErrCodeMalformed):
		return apiErr(http.StatusForbidden, "ticket_invalid", "The enrollment code is not valid.", "安装码无效")
	case errors.As(err, &ne) && (ne.Reason == "outside_validity_window" || ne.Reason == "expires_after_window"):
		return apiErr(http.StatusForbidden, "outside_window", "This temporary sub-account is outside its validity period. Contact the main account.", "该临时子账号不在有效期内，请联系主账号。")
	case errors.As(err, &ne):
		return apiErr(http.StatusForbidden, "not_eligible", "This sub-account cannot install a certificate now ("+ne.Reason+"). Contact the main account.", "该子账号当前无法安装数字证书（"+ne.Reason+"），请联系主账号")
	case errors.Is(err, errBodyTooLarge):
		return apiErr(http.StatusRequestEntityTooLarge, "body_too_large", err.Error(), "请求体过大")
	case errors.Is(err, ErrCSRTooLarge):
		return apiErr(http.StatusRequestEntityTooLarge, "csr_too_large", err.Error(), "证书请求过大")
	case errors.Is(err, ErrUnsupportedKey), errors.Is(err, ErrRSANotAllowed):
		return apiErr(http.StatusBadRequest, "unsupported_key", err.Error(), "不支持的密钥类型：请使用 ECDSA P-256 或至少 2048 位的 RSA")
	case errors.Is(err, ErrCSRMalformed), errors.Is(err, ErrCSRSignature):
		return apiErr(http.StatusBadRequest, "bad_csr", err.Error(), "证书请求无效")
	case errors.Is(err, store.ErrKeyInUse):
		return apiErr(http.StatusConflict, "key_in_use", "This key pair already has a certificate. Make a new key pair on this computer (start the installation again).", "该密钥已有证书，请在本电脑上重新开始安装以生成新的密钥")
	case errors.Is(err, store.ErrProxyInactive):
		return apiErr(http.StatusForbidden, "proxy_refused", err.Error(), "代理证书未知、已吊销或已过期")
	case errors.Is(err, errOtherProxy):
		return apiErr(http.StatusForbidden, "other_proxy", err.Error(), "确认中的代理名称与客户端证书不符")
	case errors.Is(err, errOutOfScope):
		return apiErr(http.StatusForbidden, "out_of_scope", err.Error(), "代理证书无权访问该店铺")
	case errors.Is(err, store.ErrDeviceInactive):
		return apiErr(http.StatusForbidden, "device_inactive", err.Error(), "设备证书已吊销或已过期")
	case errors.Is(err, store.ErrStale):
		return apiErr(http.StatusConflict, "stale", err.Error(), "记录已被修改，请重试")
	case errors.As(err, &be):
		return apiErr(http.StatusConflict, "below_active", err.Error(), "不能低于已安装的证书数量，请先吊销设备")
	case errors.Is(err, store.ErrNotFound):
		return apiErr(http.StatusNotFound, "not_found", "not found", "未找到")
	case errors.Is(err, store.ErrInvalid), errors.Is(err, errBadRequest):
		return apiErr(http.StatusBadRequest, "invalid", err.Error(), "请求无效")
	case errors.Is(err, errTooManyCodes):
		return apiErr(http.StatusTooManyRequests, "too_many_attempts", err.Error(), "失败次数过多，请稍后再试")
	case errors.Is(err, api.ErrVersion):
		return apiErr(http.StatusBadRequest, "unsupported_version", err.Error(), "不支持的接口版本：请升级较旧的一方")
	case errors.Is(err, errUnauthenticated):
		return apiErr(http.StatusUnauthorized, "unauthenticated", err.Error(), "需要有效的客户端证书")
	}
	return apiErr(http.StatusInternalServerError, "internal", "internal error", "内部错误")
}

// apiErr is one row of Explain's table.
func apiErr(status int, code, en, zh string) api.Error {
	return api.Error{Status: status, Code: code, Message: en, MessageZH: zh}
}

var (
	errBadRequest      = errors.New("bad request")
	errBodyTooLarge    = errors.New("request body is too large")
	errUnauthenticated = errors.New("a valid client certificate is required")
	errTooManyCodes    = errors.New("too many invalid enrollment codes from this address; try again later")
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := Explain(err)
	var ra interface{ retryAfter() time.Duration } // a refusal that says when to come back
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.retryAfter().Seconds()))))
	}
	if e.Status >= 500 {
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, e.Status, api.ErrorBody{Error: e})
}
