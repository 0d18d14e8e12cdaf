package faultproxy

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestForwardChecksumBothWays(t *testing.T) {
	const size = 8 << 20
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	const conns = 3
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoChecksum(p.Addr(), size)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	waitFor(t, "flows closed", func() bool { return p.Stats().Open == 0 })
	st := p.Stats() // complete once the flows are closed
	require.Equal(t, int64(conns*size), st.BytesUp)
	require.Equal(t, int64(conns*size), st.BytesDown)
	require.Equal(t, int64(conns), st.Accepted)
}

// echoChecksum sends size random bytes through addr to an echo server, half-
// closes, and checks that the same bytes come back followed by EOF.
func echoChecksum(addr string, size int) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, size)
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, c) // ends at EOF: the half-close came back
	if err := errors.Join(<-werr, rerr); err != nil {
		return err
	}
	if n != int64(size) || [32]byte(h.Sum(nil)) != sha256.Sum256(data) {
		return fmt.Errorf("echo mismatch: got %d bytes, want %d", n, size)
	}
	return nil
}

func TestHalfClosePropagates(t *testing.T) {
	// The upstream answers only once it has seen the client's FIN.
	up := startServer(t, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		_, _ = fmt.Fprintf(c, "got %d", n)
	})
	p := startProxy(t, Config{}, up.addr())
	c := dial(t, p.Addr())
	_, err := c.Write(make([]byte, 100_000))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	got, err := readErr(c, 2*time.Second)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, "got 100000", string(got))
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	up := startEcho(t)
	before := runtime.NumGoroutine()
	p, err := Start(Config{Upstream: up.addr(), IdleTimeout: 50 * time.Millisecond, IdleAction: ActionDrop})
	require.NoError(t, err)
	for range 4 {
		c := dial(t, p.Addr())
		roundTrip(t, c, "hello")
	}
	done := p.Refuse(time.Hour) // a pending reopen must end with Close too
	waitFor(t, "flows open", func() bool { return p.Stats().Open == 4 })
	require.NoError(t, p.Close())
	require.ErrorIs(t, <-done, net.ErrClosed)
	require.Equal(t, int64(0), p.Stats().Open)
	require.NoError(t, p.Close(), "second Close")
	// The clients are still open: the proxy must not depend on them to stop.
	// A plain poll: require.Eventually runs its condition on a goroutine.
	for i := 0; i < 200 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before)
}

func TestStartRejectsBadConfig(t *testing.T) {
	ok := "127.0.0.1:1"
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no upstream", Config{}, "Upstream"},
		{"public upstream", Config{Upstream: "10.1.2.3:80"}, "Upstream"},
		{"upstream name", Config{Upstream: "example.com:80"}, "Upstream"},
		{"all interfaces", Config{Upstream: ok, Listen: ":0"}, "Listen"},
		{"unspecified", Config{Upstream: ok, Listen: "0.0.0.0:0"}, "Listen"},
		{"fraction", Config{Upstream: ok, ResetFraction: 1.5}, "ResetFraction"},
		{"early fraction", Config{Upstream: ok, EarlyFraction: -0.1}, "EarlyFraction"},
		{"negative bytes", Config{Upstream: ok, ResetAfterBytes: -1}, "ResetAfterBytes"},
		{"action", Config{Upstream: ok, IdleAction: 9}, "IdleAction"},
		{"max conns", Config{Upstream: ok, MaxConns: -1}, "MaxConns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(tc.cfg)
			require.Nil(t, p)
			require.ErrorContains(t, err, "Config."+tc.field)
		})
	}
	_, err := Start(Config{Upstream: "192.168.0.1:5432"})
	require.ErrorIs(t, err, ErrNotLoopback)
}

func TestAcceptsLoopbackForms(t *testing.T) {
	for _, up := range []string{"127.0.0.2:1", "[::1]:1", "localhost:1"} {
		p, err := Start(Config{Upstream: up})
		require.NoError(t, err, up)
		require.NoError(t, p.Close())
	}
}
