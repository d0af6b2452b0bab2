package ca

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/devicegate/devicegate/store"
)

// The limit message of seed 000, shown verbatim by the CLI and the portal.
const (
	QuotaMessageEN = "The number of installed certificates has reached the limit. Contact the main account."
	QuotaMessageZH = "您安装的数字证书已达上限，如需安装请联系主账号"
)

// APIError is the JSON error body of every CA endpoint, and what the
// portal shows for a refused enrollment.
type APIError struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	MessageZH string `json:"message_zh"`
}

// Explain maps a domain error to a client-facing error. Unknown errors
// become a generic 500: internal details are logged, never sent.
func Explain(err error) APIError {
	var ne *store.NotEligibleError
	var be *store.BelowActiveError
	var early *RenewTooEarlyError
	var rate *RenewRateError
	switch {
	case errors.As(err, &rate):
		return APIError{http.StatusTooManyRequests, "renew_rate_limited", err.Error(), "证书续期过于频繁，请稍后再试"}
	case errors.As(err, &early):
		return APIError{http.StatusForbidden, "renew_too_early", err.Error(), "证书临近到期（最后 30 天内）才能续期；如需提前续期，请联系主账号允许该设备提前续期一次"}
	case errors.Is(err, store.ErrQuotaExceeded):
		return APIError{http.StatusForbidden, "quota_exceeded", QuotaMessageEN, QuotaMessageZH}
	case errors.Is(err, store.ErrTicketExpired):
		return APIError{http.StatusForbidden, "ticket_expired", "The enrollment code has expired. Ask the main account for a new one.", "安装码已过期，请联系主账号重新获取"}
	case errors.Is(err, store.ErrTicketUsed):
		return APIError{http.StatusForbidden, "ticket_used", "The enrollment code was already used. Ask the main account for a new one.", "安装码已被使用，请联系主账号重新获取"}
	case errors.Is(err, store.ErrTicketUnknown), errors.Is(err, ErrCodeMalformed):
		return APIError{http.StatusForbidden, "ticket_invalid", "The enrollment code is not valid.", "安装码无效"}
	case errors.As(err, &ne):
		return APIError{http.StatusForbidden, "not_eligible", "This sub-account cannot install a certificate now (" + ne.Reason + "). Contact the main account.", "该子账号当前无法安装数字证书（" + ne.Reason + "），请联系主账号"}
	case errors.Is(err, errBodyTooLarge):
		return APIError{http.StatusRequestEntityTooLarge, "body_too_large", err.Error(), "请求体过大"}
	case errors.Is(err, ErrCSRTooLarge):
		return APIError{http.StatusRequestEntityTooLarge, "csr_too_large", err.Error(), "证书请求过大"}
	case errors.Is(err, ErrUnsupportedKey), errors.Is(err, ErrRSANotAllowed):
		return APIError{http.StatusBadRequest, "unsupported_key", err.Error(), "不支持的密钥类型：请使用 ECDSA P-256 或至少 2048 位的 RSA"}
	case errors.Is(err, ErrCSRMalformed), errors.Is(err, ErrCSRSignature):
		return APIError{http.StatusBadRequest, "bad_csr", err.Error(), "证书请求无效"}
	case errors.Is(err, store.ErrKeyInUse):
		return APIError{http.StatusConflict, "key_in_use", "This key pair already has a certificate. Make a new key pair on this computer (start the installation again).", "该密钥已有证书，请在本电脑上重新开始安装以生成新的密钥"}
	case errors.Is(err, store.ErrProxyInactive):
		return APIError{http.StatusForbidden, "proxy_refused", err.Error(), "代理证书未知、已吊销或已过期"}
	case errors.Is(err, errOutOfScope):
		return APIError{http.StatusForbidden, "out_of_scope", err.Error(), "代理证书无权访问该店铺"}
	case errors.Is(err, store.ErrDeviceInactive):
		return APIError{http.StatusForbidden, "device_inactive", err.Error(), "设备证书已吊销或已过期"}
	case errors.Is(err, store.ErrStale):
		return APIError{http.StatusConflict, "stale", err.Error(), "记录已被修改，请重试"}
	case errors.As(err, &be):
		return APIError{http.StatusConflict, "below_active", err.Error(), "不能低于已安装的证书数量，请先吊销设备"}
	case errors.Is(err, store.ErrNotFound):
		return APIError{http.StatusNotFound, "not_found", "not found", "未找到"}
	case errors.Is(err, store.ErrInvalid), errors.Is(err, errBadRequest):
		return APIError{http.StatusBadRequest, "invalid", err.Error(), "请求无效"}
	case errors.Is(err, errTooManyCodes):
		return APIError{http.StatusTooManyRequests, "too_many_attempts", err.Error(), "失败次数过多，请稍后再试"}
	case errors.Is(err, errUnauthenticated):
		return APIError{http.StatusUnauthorized, "unauthenticated", err.Error(), "需要有效的客户端证书"}
	}
	return APIError{http.StatusInternalServerError, "internal", "internal error", "内部错误"}
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
	writeJSON(w, e.Status, map[string]APIError{"error": e})
}
