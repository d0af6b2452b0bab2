// Package configs embeds the example configuration files so the binary
// carries its default permission catalog and tests can load every file.
package configs

import "embed"

// DefaultPermissions is permissions.yaml: the default catalog.
//
//go:embed permissions.yaml
var DefaultPermissions []byte

// Files holds every example config (the golden test loads each one).
//
//go:embed *.yaml
var Files embed.FS
