package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
)

// adminRevokeFromCRL re-applies the revocations of a saved CRL to the
// database: after a restore from a backup, every revocation made after the
// backup is missing from the database (its devices would pass again) but
// is on the newest CRL the CA wrote before the loss (docs/operations.md,
// "Backup and restore"). Every CRL in the file is checked first: one not
// signed by one of this CA's device intermediates (or, for the root's CRL
// of the intermediates, by its root) changes nothing. A serial the database does
// not know (a certificate issued after the backup) cannot be revoked here;
// they are listed and the command fails after applying the others.
func (a *app) adminRevokeFromCRL(ctx context.Context, file string, env *cliEnv) error {
	if a.ca == nil {
		return errNoCA
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	keys := a.ca.Keys()
	var entries []x509.RevocationListEntry
	crls := 0
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			return fmt.Errorf("%s: a %q block: want only X509 CRL blocks", file, block.Type)
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: CRL %d: %w", file, crls+1, err)
		}
		crls++
		switch {
		case signedByDeviceCA(crl, keys):
			entries = append(entries, crl.RevokedCertificateEntries...)
		case crl.CheckSignatureFrom(keys.Root) == nil:
			// The root's CRL of the intermediates: not a device's business.
		default:
			return fmt.Errorf("%s: CRL %d (issuer %s) is not signed by this CA: nothing applied", file, crls, crl.Issuer)
		}
	}
	if crls == 0 {
		return fmt.Errorf("%s: no PEM CRL (X509 CRL block) in it", file)
	}
	// Serials the database has revoked already, superseded ones included
	// (a renewal revokes the old serial; the device row holds the new one).
	held, err := a.store.RevocationsForCRL(ctx, time.Now())
	if err != nil {
		return err
	}
	revoked := map[string]bool{}
	for _, rv := range held {
		revoked[rv.Serial] = true
	}
	var applied, already int
	var unknown []string
	for _, e := range entries {
		serial := ca.SerialHex(&x509.Certificate{SerialNumber: e.SerialNumber})
		if revoked[serial] {
			already++
			continue
		}
		r, err := parseReason(fmt.Sprint(e.ReasonCode))
		if err != nil {
			r = store.ReasonUnspecified
		}
		d, err := a.store.FindDevice(ctx, serial)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if done, err := a.revokeProxyFromCRL(ctx, serial, r); err != nil {
				return err
			} else if done == "" {
				unknown = append(unknown, serial)
			} else if done == "applied" {
				applied++
			} else {
				already++
			}
			continue
		case err != nil:
			return fmt.Errorf("serial %s: %w", serial, err)
		case d.Serial != serial || d.Status == store.DeviceRevoked:
			already++ // revoked, or superseded by a renewal (its old serial is revoked with it)
			continue
		}
		rv, err := a.ca.RevokeDevice(ctx, d.TenantID, d.ID, r, cliActor())
		if err != nil {
			return fmt.Errorf("device %s (serial %s): %w", d.ID, serial, err)
		}
		applied++
		fmt.Fprintf(env.stdout, "device %s revoked again (serial %s, reason %s, seq %d)\n", d.ID, rv.Serial, reasonName(rv.Reason), rv.Seq)
	}
	fmt.Fprintf(env.stdout, "%d revocation(s) re-applied, %d already in the database, %d serial(s) unknown to it\n", applied, already, len(unknown))
	if len(unknown) > 0 {
		slices.Sort(unknown)
		for _, s := range unknown {
			fmt.Fprintf(env.stdout, "unknown serial %s: issued after the backup; proxies refuse it, CRL-only servers do not (docs/operations.md)\n", s)
		}
		return fmt.Errorf("%d serial(s) of %s are not in this database", len(unknown), file)
	}
	return nil
}

// revokeProxyFromCRL revokes a proxy certificate on the CRL that the
// restored database holds as active: "applied", "already", or "" when the
// serial is no proxy's either.
func (a *app) revokeProxyFromCRL(ctx context.Context, serial string, r store.RevocationReason) (string, error) {
	p, err := a.store.GetProxyCert(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("serial %s: %w", serial, err)
	case !p.RevokedAt.IsZero():
		return "already", nil
	}
	if _, err := a.ca.RevokeProxy(ctx, serial, r); err != nil {
		return "", fmt.Errorf("proxy certificate %s: %w", serial, err)
	}
	return "applied", nil
}

// signedByDeviceCA: one of the CA's device intermediates (active, trusted
// during a rotation, or retired since the CRL was saved) signed crl.
func signedByDeviceCA(crl *x509.RevocationList, keys *ca.Keys) bool {
	for _, d := range append(slices.Clone(keys.DeviceCAs), keys.Retired...) {
		if d.Cert != nil && crl.CheckSignatureFrom(d.Cert) == nil {
			return true
		}
	}
	return false
}
