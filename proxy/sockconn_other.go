//go:build !linux

package proxy

import "net"

// wrapSock returns c: the raw socket I/O of sockconn_linux.go is Linux's.
func wrapSock(c net.Conn) net.Conn { return c }
