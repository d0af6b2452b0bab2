package sqlstore

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"time"

	"github.com/devicegate/devicegate/store"
)

// CountDevicesByIssuer counts the active devices by the authority key id
// of their stored certificate (see store.IssuerCounts). The issuer is read
// from the certificate the store already keeps (cert_der, replaced by a
// renewal), so no column has to be filled at issuance; a device recorded
// before certificates were kept counts as Unknown. Parsing costs about
// 5 µs per device: callers count on demand or every few minutes.
func (s *DB) CountDevicesByIssuer(ctx context.Context, now time.Time) (store.DeviceIssuers, error) {
	out := store.DeviceIssuers{ByKeyID: map[string]int{}}
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT cert_der FROM devices WHERE status = ? AND expires_at > ?`),
		store.DeviceActive, ts(now))
	if err != nil {
		return store.DeviceIssuers{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var der []byte
		if err := rows.Scan(&der); err != nil {
			return store.DeviceIssuers{}, err
		}
		if kid := authorityKeyID(der); kid != "" {
			out.ByKeyID[kid]++
		} else {
			out.Unknown++
		}
	}
	if err := rows.Err(); err != nil {
		return store.DeviceIssuers{}, err
	}
	return out, nil
}

// authorityKeyID is der's authority key identifier in hex, "" when der is
// empty, does not parse, or names none.
func authorityKeyID(der []byte) string {
	if len(der) == 0 {
		return ""
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(c.AuthorityKeyId)
}
