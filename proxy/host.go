package proxy

import "strings"

// canonicalHost checks a Host header value and returns its one canonical
// form: the host name lower-cased and, when present, a port of 1 to 5
// digits in 1..65535 without leading zeros. Anything else (a name as the
// port, two ports, an empty port, a sign) is refused: the value is routed
// on and passed to the app as X-Forwarded-Host, so the proxy and the app
// must not read it two ways.
func canonicalHost(h string) (name, canonical string, ok bool) {
	if h == "" || len(h) > 255 {
		return "", "", false
	}
	host, port := h, ""
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", false
		}
		host, port = h[1:end], h[end+1:]
		if !validHostChars(host, true) {
			return "", "", false
		}
		if port != "" {
			if port[0] != ':' {
				return "", "", false
			}
			port = port[1:]
			if !validPort(port) {
				return "", "", false
			}
		}
		name = strings.ToLower(host)
		canonical = "[" + name + "]"
	} else {
		if i := strings.IndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
			if !validPort(port) {
				return "", "", false
			}
		}
		if host == "" || !validHostChars(host, false) {
			return "", "", false
		}
		if !hasUpper(h) {
			return host, h, true // already canonical: no copy
		}
		name = strings.ToLower(host)
		canonical = name
	}
	if port != "" {
		canonical += ":" + port
	}
	return name, canonical, true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// validPort: 1..65535, digits only, no leading zero.
func validPort[T string | []byte](p T) bool {
	if len(p) == 0 || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// validHostChars: the characters of a DNS name or IPv4 address, or (ipv6)
// of an IPv6 literal.
func validHostChars(h string, ipv6 bool) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
		case c == '_' && !ipv6:
		case c == ':' && ipv6:
		default:
			return false
		}
	}
	return true
}
