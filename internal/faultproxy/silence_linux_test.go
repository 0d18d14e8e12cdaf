//go:build linux

package faultproxy

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// silenceWorks reports whether this process may close sockets silently.
func silenceWorks(t *testing.T) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return silence(c.(*net.TCPConn))
}

// bytesAcked is tcp_info's count of bytes the peer acknowledged, less the
// SYN.
func bytesAcked(fd int) int {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return -1
	}
	return int(info.Bytes_acked) - 1
}
