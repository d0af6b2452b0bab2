package store

// Options configure an opened Store.
type Options struct {
	// SealKey is the 32-byte AES-256-GCM key that seals TOTP secrets at
	// rest. Required: a store without it refuses to open.
	SealKey []byte
}
