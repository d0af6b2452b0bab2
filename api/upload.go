package api

import "time"

// What a feed proxy sends back to the CA (VersionHeader required, 204 on
// success): its decisions for the audit log and its devices' last use.
// An upload naming a store outside the proxy certificate's scope is
// refused whole. Who did it and when is the CA's to say: the actor is the
// proxy of the certificate and the time the CA's receive time; what the
// proxy observed is kept as details (observed_at, client_ip).
const (
	AuditPath = "/v1/audit"
	SeenPath  = "/v1/seen"
)

// Bounds of one upload (the CA refuses more).
const (
	MaxUploadBytes = 4 << 20
	MaxUploadItems = 4096
)

// AuditUpload is the body of POST /v1/audit.
type AuditUpload struct {
	Records []AuditRecord `json:"records"` // 1..MaxUploadItems
}

// AuditRecord is one (possibly coalesced) decision of the proxy.
type AuditRecord struct {
	TenantID string            `json:"tenant_id"`
	Time     time.Time         `json:"time,omitzero"`       // the proxy's clock; kept as detail observed_at
	ClientIP string            `json:"client_ip,omitempty"` // the address the proxy saw; kept as detail client_ip
	Action   string            `json:"action"`              // proxy.* only
	Target   string            `json:"target"`
	Outcome  string            `json:"outcome"`
	Detail   map[string]string `json:"detail,omitempty"`
}

// SeenUpload is the body of POST /v1/seen. The CA records its own receive
// time as the devices' last use.
type SeenUpload struct {
	Devices []SeenDevice `json:"devices"` // 1..MaxUploadItems
}

// SeenDevice is one device that passed the proxy.
type SeenDevice struct {
	TenantID string `json:"tenant_id"`
	DeviceID string `json:"device_id"`
	IP       string `json:"ip"` // the client address the proxy saw
}
