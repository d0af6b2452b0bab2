package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/store"
)

// parseWindow reads the --from/--until of a temporary sub-account. A date
// (2026-11-01) is a day in loc: --from starts at its first moment, --until
// ends with its last (the seed's "11-01 to 12-21" includes 12-21); an
// RFC 3339 time is taken as it is. Empty: unbounded on that side.
func parseWindow(from, until string, loc *time.Location) (store.Window, error) {
	var w store.Window
	var err error
	if from != "" {
		if w.NotBefore, err = parseWindowTime(from, loc, false); err != nil {
			return w, fmt.Errorf("%w: --from: %v", store.ErrInvalid, err)
		}
	}
	if until != "" {
		if w.NotAfter, err = parseWindowTime(until, loc, true); err != nil {
			return w, fmt.Errorf("%w: --until: %v", store.ErrInvalid, err)
		}
	}
	if !w.NotBefore.IsZero() && !w.NotAfter.IsZero() && !w.NotAfter.After(w.NotBefore) {
		return w, fmt.Errorf("%w: --until must be after --from", store.ErrInvalid)
	}
	return w, nil
}

func parseWindowTime(v string, loc *time.Location, endOfDay bool) (time.Time, error) {
	if d, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		if endOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2026-12-21) nor an RFC 3339 time", v)
	}
	return t, nil
}

// windowText is how listings show a temporary account's window.
func windowText(w store.Window) string {
	if w.NotAfter.IsZero() {
		return "-"
	}
	s := "temporary until " + w.NotAfter.Local().Format("2006-01-02 15:04")
	if !w.NotBefore.IsZero() {
		s = "temporary " + w.NotBefore.Local().Format("2006-01-02 15:04") + " to " + w.NotAfter.Local().Format("2006-01-02 15:04")
	}
	return s
}

// windowFlags are sub add's --from and --until.
func windowFlags(fs *flag.FlagSet) (from, until *string) {
	from = fs.String("from", "", "temporary account: first day `DATE` (2026-11-01, local time) or an RFC 3339 time")
	until = fs.String("until", "", "temporary account: last day `DATE` (2026-12-21: usable through that day) or an RFC 3339 time")
	return from, until
}
