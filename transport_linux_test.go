//go:build linux

package rstpool

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// bytesAcked reads tcpi_bytes_acked: the bytes the peer's kernel
// acknowledged on the connection.
func bytesAcked(t *testing.T, c *net.TCPConn) uint64 {
	raw, err := c.SyscallConn()
	require.NoError(t, err)
	var info *unix.TCPInfo
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }))
	require.NoError(t, serr)
	return info.Bytes_acked
}

// TestProofOfNonDeliveryEvidence is the evidence behind keeping "proof of
// non-delivery" off. A request to a socket the server already closed is
// answered by an RST and acknowledges nothing (sound). But a server that
// reads the request and then resets before its delayed ACK leaves the
// client with the same reading, bytes_acked unchanged, although the
// application read every byte: Linux processes an RST without its ACK
// field. So "not acknowledged" does not prove "not read".
func TestProofOfNonDeliveryEvidence(t *testing.T) {
	const req = "POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	read := make(chan int, 1)
	ln := listen(t, func(c net.Conn) {
		buf := make([]byte, 4)
		_, _ = c.Read(buf) // the first exchange
		_, _ = c.Write([]byte("pong"))
		n, _ := c.Read(make([]byte, len(req)))
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close() // reset right after reading, within the delayed-ACK window
		read <- n
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	tc := c.(*net.TCPConn)
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 4))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // leave quick-ACK mode settled
	before := bytesAcked(t, tc)
	_, err = c.Write([]byte(req))
	require.NoError(t, err)
	n := <-read
	_, rerr := c.Read(make([]byte, 1))
	require.Error(t, rerr)
	after := bytesAcked(t, tc)
	t.Logf("server read %d of %d bytes; client saw %d of them acknowledged", n, len(req), after-before)
	require.Equal(t, len(req), n, "the server application read the whole request")
}
