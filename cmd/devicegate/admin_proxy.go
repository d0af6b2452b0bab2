package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// proxyJSON is one proxy certificate in `admin proxy list --json`.
type proxyJSON struct {
	Name        string    `json:"name"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	Stores      []string  `json:"stores"` // store names; ["all"] for every store
	Status      string    `json:"status"` // active, expired, revoked
	IssuedAt    time.Time `json:"issued_at"`
	NotAfter    time.Time `json:"not_after"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"revocation_reason,omitempty"`
	RenewedFrom string    `json:"renewed_from,omitempty"`
}

func (a *app) adminProxyList(ctx context.Context, asJSON bool, env *cliEnv) error {
	certs, err := a.store.ListProxyCerts(ctx)
	if err != nil {
		return err
	}
	tenants, err := a.store.ListTenants(ctx)
	if err != nil {
		return err
	}
	names := make(map[string]string, len(tenants))
	for _, t := range tenants {
		names[t.ID] = t.Name
	}
	now := time.Now()
	views := make([]proxyJSON, 0, len(certs))
	for _, p := range certs {
		v := proxyJSON{Name: p.Name, Serial: p.Serial, Fingerprint: p.Fingerprint, Stores: []string{"all"}, Status: "active",
			IssuedAt: p.IssuedAt, NotAfter: p.NotAfter, RevokedAt: p.RevokedAt, RenewedFrom: p.RenewedFrom}
		if !p.Scope.All {
			v.Stores = v.Stores[:0]
			for _, id := range p.Scope.Stores {
				v.Stores = append(v.Stores, names[id])
			}
		}
		switch {
		case !p.RevokedAt.IsZero():
			v.Status, v.Reason = "revoked", reasonName(p.Reason)
		case !p.ActiveAt(now):
			v.Status = "expired"
		}
		views = append(views, v)
	}
	if asJSON {
		return printJSON(env, views)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tSTORES\tSERIAL\tEXPIRES")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Status, strings.Join(v.Stores, ","), v.Serial, v.NotAfter.Format(time.RFC3339))
	}
	return tw.Flush()
}

// adminProxyRevoke revokes one proxy certificate (SERIAL) or all of a
// proxy (NAME). A running CA refuses the proxy on its next request and
// cuts its open feed requests; the serials go on the CRL.
func (a *app) adminProxyRevoke(ctx context.Context, target, reason string, env *cliEnv) error {
	r, err := a.revocation(reason)
	if err != nil {
		return err
	}
	revoked, err := a.ca.RevokeProxy(ctx, target, r)
	if err != nil {
		return err
	}
	if len(revoked) == 0 {
		fmt.Fprintf(env.stdout, "proxy %s: nothing to revoke (already revoked)\n", target)
		return nil
	}
	for _, p := range revoked {
		fmt.Fprintf(env.stdout, "proxy %s: certificate %s revoked (reason %s)\n", p.Name, p.Serial, reasonName(p.Reason))
	}
	return nil
}
