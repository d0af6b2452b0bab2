// Package config loads devicegate's YAML files strictly: read, parse with
// unknown keys refused, apply defaults, validate (every problem reported at
// once). Nothing here has side effects.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a config file.
const MaxFileBytes = 1 << 20

// readFile reads a config file with the size bound.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// decodeStrict decodes exactly one YAML document into v, refusing unknown
// and duplicate keys (yaml.v3 refuses duplicates itself).
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxFileBytes {
		return fmt.Errorf("config is larger than %d bytes", MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("config is empty")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("config must be a single YAML document")
	}
	return nil
}
