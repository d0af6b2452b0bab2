package store

import (
	"context"
	"time"
)

// DeviceIssuers is how many active devices each device intermediate
// issued: what an operator checks before retiring an old intermediate
// after a rotation (docs/operations.md, "Rotating the device
// intermediate").
type DeviceIssuers struct {
	// ByKeyID counts active devices by the authority key identifier of
	// their current certificate (lower-case hex): the subject key
	// identifier of the intermediate that signed it.
	ByKeyID map[string]int
	// Unknown counts active devices whose issuer cannot be told: no
	// certificate stored (recorded before certificates were kept), or one
	// that does not parse or names no authority key.
	Unknown int
}

// Total is every active device counted.
func (d DeviceIssuers) Total() int {
	n := d.Unknown
	for _, c := range d.ByKeyID {
		n += c
	}
	return n
}

// IssuerCounts is implemented by every Store.
type IssuerCounts interface {
	// CountDevicesByIssuer counts, across tenants, the devices active at
	// now (not revoked, not expired) by the intermediate that issued their
	// current certificate. A renewal moves a device to its new issuer.
	CountDevicesByIssuer(ctx context.Context, now time.Time) (DeviceIssuers, error)
}
