package config

import (
	"fmt"
	"net"
	"strings"
)

// ValidateACMEHost accepts a DNS name, "*.domain", an IP address or a
// CIDR range (not wider than /8 for IPv4 or /32 for IPv6, so a typo cannot
// open the service to the whole internet).
func ValidateACMEHost(h string) error {
	if ip := net.ParseIP(h); ip != nil {
		return nil
	}
	if _, n, err := net.ParseCIDR(h); err == nil {
		ones, bits := n.Mask.Size()
		if (bits == 32 && ones < 8) || (bits == 128 && ones < 32) {
			return fmt.Errorf("ACME host range %q is too wide", h)
		}
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	labels := strings.Split(name, ".")
	if len(name) == 0 || len(name) > 253 || (h != name && len(labels) < 2) {
		return fmt.Errorf("ACME host %q is not a DNS name, *.domain, IP or CIDR", h)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("ACME host %q is not a DNS name, *.domain, IP or CIDR", h)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("ACME host %q is not a DNS name, *.domain, IP or CIDR", h)
			}
		}
	}
	return nil
}
