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

// A socket silenced and then taken out of repair mode carries bytes again:
// the sweep undoes its silence when the flow it silenced lives on (its
// client spoke meanwhile, or forgetting was turned off), instead of
// leaving the client's bytes unanswered.
func TestUnsilenceCarriesBytesAgain(t *testing.T) {
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
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("the client got %q, %v", buf, err)
	}
}
