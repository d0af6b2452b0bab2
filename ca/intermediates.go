package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// DeviceStateFile lists the device intermediates of a CA directory and
// what each may do. A CA directory without it (every CA before the first
// rotation) has one device intermediate, devices.crt/devices.key, active.
// The file is replaced in one rename, so every change of roles (a new
// intermediate trusted, another one issuing, an old one retired) is
// atomic; the certificate and key files it names are written before it.
const DeviceStateFile = "devices.json"

// The roles of a device intermediate.
const (
	// StateActive signs new device and proxy certificates (exactly one),
	// and is trusted.
	StateActive = "active"
	// StateTrusted is trusted by proxies and the CA (its devices pass, its
	// CRL and OCSP answers are signed) but issues nothing: a new
	// intermediate before it is activated, or the previous one during the
	// overlap.
	StateTrusted = "trusted"
	// StateRetired is trusted no more: certificates it issued are refused,
	// and named as such. Its certificate is kept for that message.
	StateRetired = "retired"
)

// originalDeviceName is the device intermediate `ca init` makes.
const originalDeviceName = "devices"

// intermediateName: "devices", or "devices-<n>" for later ones. Names
// become file names, so nothing else is accepted.
var intermediateName = regexp.MustCompile(`^devices(-[1-9][0-9]{0,5})?$`)

// maxDeviceStateFile and maxIntermediates bound what parseDeviceState reads.
const (
	maxDeviceStateFile = 64 << 10
	maxIntermediates   = 100
)

// IntermediateEntry is one device intermediate of the state file.
type IntermediateEntry struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// deviceState is the content of DeviceStateFile.
type deviceState struct {
	Version       int                 `json:"version"`
	Intermediates []IntermediateEntry `json:"intermediates"`
}

// legacyDeviceState is the state of a CA directory without the file.
func legacyDeviceState() deviceState {
	return deviceState{Version: 1, Intermediates: []IntermediateEntry{{Name: originalDeviceName, State: StateActive}}}
}

// parseDeviceState reads the state file strictly: version 1, known
// states, valid and unique names, exactly one active intermediate. Any
// other content is an error, never a guess.
func parseDeviceState(data []byte) (deviceState, error) {
	if len(data) > maxDeviceStateFile {
		return deviceState{}, fmt.Errorf("%s is larger than %d bytes", DeviceStateFile, maxDeviceStateFile)
	}
	var st deviceState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return deviceState{}, fmt.Errorf("%s: %w", DeviceStateFile, err)
	}
	if dec.More() {
		return deviceState{}, fmt.Errorf("%s: trailing data", DeviceStateFile)
	}
	return st, st.validate()
}

func (st deviceState) validate() error {
	if st.Version != 1 {
		return fmt.Errorf("%s: unknown version %d", DeviceStateFile, st.Version)
	}
	if len(st.Intermediates) == 0 || len(st.Intermediates) > maxIntermediates {
		return fmt.Errorf("%s: %d intermediates (1 to %d)", DeviceStateFile, len(st.Intermediates), maxIntermediates)
	}
	seen := map[string]bool{}
	active := 0
	for _, e := range st.Intermediates {
		if !intermediateName.MatchString(e.Name) {
			return fmt.Errorf("%s: bad intermediate name %q", DeviceStateFile, e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("%s: %q listed twice", DeviceStateFile, e.Name)
		}
		seen[e.Name] = true
		switch e.State {
		case StateActive:
			active++
		case StateTrusted, StateRetired:
		default:
			return fmt.Errorf("%s: %q has unknown state %q", DeviceStateFile, e.Name, e.State)
		}
	}
	if active != 1 {
		return fmt.Errorf("%s: %d active intermediates, want exactly 1", DeviceStateFile, active)
	}
	return nil
}

// readDeviceState reads dir's state file, or the legacy state without one.
func readDeviceState(dir string) (deviceState, error) {
	data, err := os.ReadFile(filepath.Join(dir, DeviceStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return legacyDeviceState(), nil
	}
	if err != nil {
		return deviceState{}, err
	}
	return parseDeviceState(data)
}

func (st deviceState) marshal() ([]byte, error) {
	if err := st.validate(); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// entry returns the entry named name.
func (st deviceState) entry(name string) (IntermediateEntry, bool) {
	for _, e := range st.Intermediates {
		if e.Name == name {
			return e, true
		}
	}
	return IntermediateEntry{}, false
}

// with returns a copy of st with name's state set (appended if new).
func (st deviceState) with(name, state string) deviceState {
	out := deviceState{Version: st.Version}
	found := false
	for _, e := range st.Intermediates {
		if e.Name == name {
			e.State, found = state, true
		}
		out.Intermediates = append(out.Intermediates, e)
	}
	if !found {
		out.Intermediates = append(out.Intermediates, IntermediateEntry{Name: name, State: state})
	}
	return out
}

func certFileOf(name string) string { return name + ".crt" }
func keyFileOf(name string) string  { return name + ".key" }
