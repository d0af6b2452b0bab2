package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

const proxyCertColumns = `serial, name, fingerprint, scope, issued_at, not_after, revoked_at, reason, renewed_from`

func scanProxyCert(row scanner) (store.ProxyCert, error) {
	var p store.ProxyCert
	var scope string
	var issued, notAfter, revoked int64
	if err := row.Scan(&p.Serial, &p.Name, &p.Fingerprint, &scope, &issued, &notAfter, &revoked, &p.Reason, &p.RenewedFrom); err != nil {
		return p, notFound(err, "proxy certificate")
	}
	p.Scope = parseProxyScope(scope)
	p.IssuedAt, p.NotAfter, p.RevokedAt = fromTS(issued), fromTS(notAfter), fromTS(revoked)
	return p, nil
}

// Scopes are stored as "*" or the tenant ids joined by ",".
func proxyScopeText(s store.ProxyScope) string {
	if s.All {
		return "*"
	}
	return strings.Join(s.Stores, ",")
}

func parseProxyScope(v string) store.ProxyScope {
	if v == "*" {
		return store.ProxyScope{All: true}
	}
	return store.ProxyScope{Stores: strings.Split(v, ",")}
}

// checkProxyScope wants exactly one of All and a non-empty list of known
// tenant ids, and returns the list sorted without duplicates.
func (s *DB) checkProxyScope(ctx context.Context, tx *txn, sc store.ProxyScope) (store.ProxyScope, error) {
	if sc.All {
		if len(sc.Stores) > 0 {
			return sc, invalid("proxy scope is either every store or a list of stores, not both")
		}
		return store.ProxyScope{All: true}, nil
	}
	if len(sc.Stores) == 0 {
		return sc, invalid("proxy scope names no store (every store must be asked for explicitly)")
	}
	ids := slices.Clone(sc.Stores)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM tenants WHERE id = ?`), id).Scan(&n); err != nil {
			return sc, err
		}
		if n == 0 {
			return sc, invalid("proxy scope: no store with id %q", id)
		}
	}
	return store.ProxyScope{Stores: ids}, nil
}

// RecordProxyCert stores a newly signed proxy certificate. A renewal
// (RenewedFrom set) takes the name and scope of the certificate it renews,
// which must be active at p.IssuedAt, checked in the same transaction as
// the insert so a concurrent revocation cannot be outrun.
func (s *DB) RecordProxyCert(ctx context.Context, p store.ProxyCert) (store.ProxyCert, error) {
	if err := checkCert(p.Serial, p.Fingerprint, "", p.IssuedAt, p.NotAfter); err != nil {
		return store.ProxyCert{}, err
	}
	if !p.RevokedAt.IsZero() {
		return store.ProxyCert{}, invalid("a new proxy certificate cannot be revoked already")
	}
	p.IssuedAt, p.NotAfter = fromTS(ts(p.IssuedAt)), fromTS(ts(p.NotAfter))
	err := s.inTx(ctx, func(tx *txn) error {
		if p.RenewedFrom != "" {
			old, err := scanProxyCert(tx.QueryRowContext(ctx, s.q(`SELECT `+proxyCertColumns+` FROM proxy_certs WHERE serial = ?`+s.d.ForUpdate), p.RenewedFrom))
			if err != nil {
				return fmt.Errorf("renew %s: %w", p.RenewedFrom, store.ErrProxyInactive)
			}
			if !old.ActiveAt(p.IssuedAt) {
				return fmt.Errorf("renew %s: %w", p.RenewedFrom, store.ErrProxyInactive)
			}
			p.Name, p.Scope = old.Name, old.Scope
		}
		if p.Name == "" || len(p.Name) > 256 {
			return invalid("proxy certificate needs a name")
		}
		var err error
		if p.Scope, err = s.checkProxyScope(ctx, tx, p.Scope); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO proxy_certs (`+proxyCertColumns+`, revoke_seq) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, 0)`),
			p.Serial, p.Name, p.Fingerprint, proxyScopeText(p.Scope), ts(p.IssuedAt), ts(p.NotAfter), p.RenewedFrom)
		if err != nil && s.d.IsUniqueViolation(err) {
			return fmt.Errorf("proxy certificate serial: %w", store.ErrDuplicate)
		}
		return err
	})
	if err != nil {
		return store.ProxyCert{}, err
	}
	return p, nil
}

// GetProxyCert reads the record of one proxy certificate.
func (s *DB) GetProxyCert(ctx context.Context, serial string) (store.ProxyCert, error) {
	return scanProxyCert(s.ro().QueryRowContext(ctx, s.q(`SELECT `+proxyCertColumns+` FROM proxy_certs WHERE serial = ?`), serial))
}

// ListProxyCerts lists every proxy certificate, by name then issue time.
func (s *DB) ListProxyCerts(ctx context.Context) ([]store.ProxyCert, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+proxyCertColumns+` FROM proxy_certs ORDER BY name, issued_at, serial`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.ProxyCert{}
	for rows.Next() {
		p, err := scanProxyCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RevokeProxyCerts revokes the certificate with serial nameOrSerial and
// every unrevoked certificate of the proxy named nameOrSerial. The policy
// seq moves, so the CA re-signs its CRL and wakes (and cuts) the open feed
// requests of that proxy.
func (s *DB) RevokeProxyCerts(ctx context.Context, nameOrSerial string, reason store.RevocationReason, now time.Time) ([]store.ProxyCert, error) {
	if nameOrSerial == "" {
		return nil, invalid("proxy name or serial is required")
	}
	var out []store.ProxyCert
	err := s.inTx(ctx, func(tx *txn) error {
		var known int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM proxy_certs WHERE serial = ? OR name = ?`), nameOrSerial, nameOrSerial).Scan(&known); err != nil {
			return err
		}
		if known == 0 {
			return fmt.Errorf("proxy %q: %w", nameOrSerial, store.ErrNotFound)
		}
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE proxy_certs SET revoked_at = ?, reason = ?, revoke_seq = ?
			WHERE (serial = ? OR name = ?) AND revoked_at = 0 RETURNING `+proxyCertColumns), ts(now), reason, seq, nameOrSerial, nameOrSerial)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanProxyCert(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.ProxyCert) int { return strings.Compare(a.Serial, b.Serial) })
	return out, nil
}
