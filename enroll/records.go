package enroll

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"

	"github.com/devicegate/devicegate/store"
)

// recordRow is one audit event as the records page shows it.
type recordRow struct {
	store.AuditEvent
	DetailText string
}

type recordsData struct {
	Target, Action string
	Rows           []recordRow
}

// maxRecords bounds one page and one export.
const maxRecords = 1000

func (p *Portal) records(r *http.Request, s *session) (recordsData, error) {
	q := r.URL.Query()
	d := recordsData{Target: strings.TrimSpace(q.Get("target")), Action: strings.TrimSpace(q.Get("action"))}
	evs, err := p.opts.Store.ListAudit(r.Context(), s.tenantID, store.AuditFilter{Target: d.Target, Action: d.Action, Limit: maxRecords})
	if err != nil {
		return d, err
	}
	// Newest first.
	for i := len(evs) - 1; i >= 0; i-- {
		d.Rows = append(d.Rows, recordRow{AuditEvent: evs[i], DetailText: detailText(evs[i].Detail)})
	}
	return d, nil
}

func detailText(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func (p *Portal) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := p.records(r, s)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	p.render(w, r, http.StatusOK, "owner_audit", view{Data: d})
}

// auditCSV exports the filtered records. Cells that a spreadsheet would
// run as a formula are prefixed with a quote.
func (p *Portal) auditCSV(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := p.records(r, s)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="devicegate-records.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"seq", "time", "actor_kind", "actor", "ip", "action", "target", "outcome", "details", "hash"})
	for _, e := range d.Rows {
		_ = cw.Write([]string{strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Actor.Kind,
			safeCell(e.Actor.Name), e.Actor.IP, e.Action, safeCell(e.Target), safeCell(e.Outcome), safeCell(e.DetailText), e.Hash})
	}
	cw.Flush()
}

func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
