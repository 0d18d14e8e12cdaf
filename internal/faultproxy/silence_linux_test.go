//go:build linux

package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"

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

// A socket silenced and then taken out of repair mode carries bytes again,
// and keeps SO_REUSEADDR: the proxy can listen again on its port after a
// restart while the socket lives (leaving repair mode clears it).
func TestUnsilenceLeavesTheSocketAsItWas(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !silence(s.(*net.TCPConn)) {
		t.Skip("TCP_REPAIR is not allowed here (CAP_NET_ADMIN)")
	}
	unsilence(s.(*net.TCPConn))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatalf("the unsilenced socket got no bytes: %v", err)
	}
	ln.Close()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again beside the unsilenced socket: %v", err)
	}
	ln2.Close()
}
