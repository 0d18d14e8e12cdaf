package integration

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// countingNetDialer is a net.Dialer that counts its connect attempts: the
// load a client offers the network, retries included.
func countingNetDialer(n *atomic.Int64) *net.Dialer {
	return notingNetDialer(func() { n.Add(1) })
}

// notingNetDialer is a net.Dialer that calls note as each connect attempt
// begins, just before its SYN.
func notingNetDialer(note func()) *net.Dialer {
	return &net.Dialer{ControlContext: func(context.Context, string, string, syscall.RawConn) error {
		note()
		return nil
	}}
}

// statusServer answers every request with code and counts the requests.
func statusServer(t *testing.T, code int, n *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// resetServer accepts connections, reads one line of each (an HTTP request
// line, a command) and resets it (SetLinger(0), Close), as a server that
// fails every request; it counts the lines it read.
func resetServer(t *testing.T, n *atomic.Int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				go resetAfterLine(c.(*net.TCPConn), n)
			}
		}
	}()
	return ln.Addr().String()
}

func resetAfterLine(c *net.TCPConn, n *atomic.Int64) {
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		n.Add(1)
	}
	_ = c.SetLinger(0)
	_ = c.Close()
}
