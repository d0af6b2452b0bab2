package ca

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/devicegate/devicegate/store"
)

// IntermediateUse is one device intermediate with the devices still on it:
// an old intermediate is retired once its ActiveDevices is 0, or once the
// devices left on it have renewed or expired (docs/operations.md,
// "Rotating the device intermediate").
type IntermediateUse struct {
	DeviceCA
	// ActiveDevices counts unrevoked, unexpired devices whose current
	// certificate it issued, in every store (tenant).
	ActiveDevices int
	// Countable is false for an intermediate without a subject key
	// identifier of its own (none, or the same as another's): its devices
	// cannot be told apart and are counted in Unattributed, never shown
	// as 0.
	Countable bool
}

// IntermediateUses is the count for every device intermediate of a CA
// directory.
type IntermediateUses struct {
	Intermediates []IntermediateUse
	// Unattributed counts active devices of no listed intermediate: no
	// certificate stored (recorded before certificates were kept), or an
	// issuer key matching none of them.
	Unattributed int
}

// CountIntermediateUse counts the active devices at now of each of cas
// (ListIntermediates, or an authority's trusted and retired ones).
func CountIntermediateUse(ctx context.Context, st store.Store, cas []DeviceCA, now time.Time) (IntermediateUses, error) {
	counts, err := st.CountDevicesByIssuer(ctx, now)
	if err != nil {
		return IntermediateUses{}, err
	}
	out := IntermediateUses{Unattributed: counts.Total()}
	holders := map[string]int{}
	for _, d := range cas {
		holders[string(d.Cert.SubjectKeyId)]++
	}
	for _, d := range cas {
		kid := d.Cert.SubjectKeyId
		u := IntermediateUse{DeviceCA: d, Countable: len(kid) > 0 && holders[string(kid)] == 1}
		if u.Countable {
			u.ActiveDevices = counts.ByKeyID[hex.EncodeToString(kid)]
			out.Unattributed -= u.ActiveDevices
		}
		out.Intermediates = append(out.Intermediates, u)
	}
	return out, nil
}
