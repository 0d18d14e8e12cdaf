package rstpool

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A server that answers early (an error) and closes while the client still
// sends its body: the kernel resets the connection because data is unread.
func TestCauseUnreadData(t *testing.T) {
	ln := listen(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 16))
		_, _ = c.Write([]byte("413 too large\n"))
		time.Sleep(50 * time.Millisecond)
		c.Close() // the rest of the body is unread: RST
	})
	c := dialTracked(t, noRetry(), ln.Addr().String())
	c.begin() // the request begins: a consumer handed the connection out
	_, err := c.Write([]byte("PUT /big 1048576\n"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 14))
	require.NoError(t, err, "the early answer is readable")

	chunk := make([]byte, 64<<10)
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write(chunk)
	}
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), "%v", err)
	require.Equal(t, "write", ce.Op)
	require.Positive(t, ce.Written)
	require.Equal(t, CauseUnreadData, ce.Cause(), "%v", err)
	require.Contains(t, ce.Error(), "likely server closed with the request still unread")
}

func TestCauseLabels(t *testing.T) {
	cases := []struct {
		e    ConnError
		want Cause
	}{
		{ConnError{Op: "dial", Class: ClassRefused}, CauseNotListening},
		{ConnError{Op: "dial", Class: ClassReset}, CauseConnectReset}, // answered by a reset: a refusal's sibling
		{ConnError{Op: "read", Class: ClassTimeout, Err: syscall.ETIMEDOUT}, CauseBlackHole},
		{ConnError{Op: "read", Class: ClassTimeout, Err: errors.New("deadline")}, CauseUnknown},
		{ConnError{Op: "read", Class: ClassReset, Reused: true, diedIdle: true}, CauseIdleReaped},
		{ConnError{Op: "read", Class: ClassReset, Reused: true}, CausePeerDied},
		{ConnError{Op: "read", Class: ClassReset, Reused: false, diedIdle: true}, CausePeerDied},
		{ConnError{Op: "write", Class: ClassBrokenPipe, readBack: 3}, CauseUnreadData},
		{ConnError{Op: "validate", Class: ClassPeerClosed, Err: ErrPeerClosed, Reused: true, diedIdle: true}, CauseIdleReaped},
		{ConnError{Op: "validate", Class: ClassCanceled, Err: ErrIdleLimit, Reused: true, diedIdle: true}, CauseUnknown},
		{ConnError{Op: "read", Class: ClassDNS}, CauseUnknown},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, tc.e.Cause(), "%+v", tc.e)
		require.NotEmpty(t, tc.want.Advice())
	}
	require.Equal(t, "unknown", Cause(99).String())
}

func TestReadWriteDoNotAllocate(t *testing.T) {
	c := dialTracked(t, noRetry(), listen(t, echo).Addr().String())
	msg, buf := make([]byte, 32), make([]byte, 32)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)

	time.Sleep(2 * DefaultPeekAfter)
	allocs = testing.AllocsPerRun(1, func() {
		_, _ = c.Write(msg) // the first write after quiet checks the socket
		_, _ = io.ReadFull(c, buf)
	})
	require.Zero(t, allocs, "the check before use does not allocate either")
}
