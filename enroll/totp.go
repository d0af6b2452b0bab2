package enroll

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/devicegate/devicegate/store"
)

var (
	errBadCode    = errors.New("verification code is not correct")
	totpValidate  = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	totpStepWidth = int64(30)
)

// checkTOTP accepts a 6-digit code of the current, previous or next
// 30-second step, and spends that step in the store so the code works
// only once (store.ErrCodeReused after that).
func (p *Portal) checkTOTP(ctx context.Context, tenantID, subID string, secret []byte, code string) error {
	if len(code) != 6 || len(secret) == 0 {
		return errBadCode
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return errBadCode
		}
	}
	now := p.opts.Now().Unix()
	for skew := int64(-1); skew <= 1; skew++ {
		step := now/totpStepWidth + skew
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*totpStepWidth, 0), totpValidate)
		if err != nil {
			return errBadCode
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return p.opts.Store.UseTOTPStep(ctx, tenantID, subID, step)
		}
	}
	return errBadCode
}

// totpMessage is the user's message key for a failed code.
func totpMessage(err error) string {
	if errors.Is(err, store.ErrCodeReused) {
		return "err_totp_reused"
	}
	return "err_totp"
}

// newTOTPKey makes a secret for account (the otpauth URI names it).
func newTOTPKey(issuer, account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: 30, Digits: otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1})
}

// totpEnrollment is what a page shows once to bind a phone: the QR code
// (PNG data URL, allowed by the CSP's img-src data:) and the key for
// manual entry.
type totpEnrollment struct {
	QR     template.URL
	Secret string
}

func enrollmentOf(key *otp.Key) (totpEnrollment, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return totpEnrollment{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return totpEnrollment{}, err
	}
	return totpEnrollment{
		QR:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())),
		Secret: key.Secret(),
	}, nil
}
