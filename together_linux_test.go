package rstpool

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// forgetSilently closes c without a FIN or an RST (TCP_REPAIR): the peer's
// next bytes reach no socket and the kernel answers them with an RST,
// acknowledging none, as after a middlebox or a host forgot the flow.
func forgetSilently(t *testing.T, c net.Conn) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR, 1) }))
	if serr != nil {
		t.Skipf("TCP_REPAIR needs CAP_NET_ADMIN: %v", serr)
	}
	_ = c.Close()
}
