package sqlstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealer encrypts TOTP secrets at rest with AES-256-GCM. The additional
// data binds a ciphertext to its row, so a secret copied into another row
// does not decrypt.
type sealer struct{ aead cipher.AEAD }

const sealVersion = 1

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("store: a 32-byte seal key is required")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || ciphertext; nil stays nil.
func (s *sealer) seal(plain []byte, rowID string) []byte {
	if plain == nil {
		return nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("devicegate: crypto/rand failed: " + err.Error())
	}
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(rowID))
}

func (s *sealer) open(sealed []byte, rowID string) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errors.New("store: sealed secret has an unknown format")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(rowID))
	if err != nil {
		return nil, fmt.Errorf("store: sealed secret does not open (wrong seal key?): %w", err)
	}
	return plain, nil
}
