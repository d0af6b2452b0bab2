package config

import (
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// CheckFile validates one config file and returns every problem joined. A
// file whose top level has "points" or "roles" is a permission catalog;
// anything else is a devicegate/CA config.
func CheckFile(path string) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	if isCatalog(data) {
		_, err = LoadCatalog(path)
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, err = Parse(data, filepath.Dir(abs))
	return err
}

func isCatalog(data []byte) bool {
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	_, points := top["points"]
	_, roles := top["roles"]
	return points || roles
}
