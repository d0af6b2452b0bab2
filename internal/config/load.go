package config

import (
	"errors"
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Load reads, parses, defaults and validates a config file. Relative paths
// in it are relative to the file's directory.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse parses config YAML; relative paths are resolved against baseDir.
// Every problem is reported, in the order of the file (problems.go).
func Parse(data []byte, baseDir string) (*Config, error) {
	var c Config
	var p problems
	if err := decodeStrict(data, &c); err != nil {
		// Unknown keys and wrong types are reported together with every
		// validation problem of the rest of the file.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		var doc yaml.Node
		_ = yaml.Unmarshal(data, &doc) // it decoded above: only the keys as written are wanted
		p.addDecodeErrors(te, &doc)
		c = Config{}
		_ = yaml.Unmarshal(data, &c)
	}
	c.setDefaults(baseDir, &p)
	c.validate(&p)
	if len(p) == 0 {
		return &c, nil
	}
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc) // it decoded above: only the positions are wanted
	return nil, p.inFileOrder(&doc).err()
}
