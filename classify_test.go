package rstpool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// resetServer reads one byte of each connection, then resets it.
func resetServer(c net.Conn) {
	_, _ = c.Read(make([]byte, 1))
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

// Each class comes from a real event on loopback, not a constructed error.
func TestClassifyRealEvents(t *testing.T) {
	cases := []struct {
		name  string
		event func(t *testing.T) error
		want  Class
	}{
		{"reset", realReset, ClassReset},
		{"refused", realRefusal, ClassRefused},
		{"broken pipe", realBrokenPipe, ClassBrokenPipe},
		{"peer closed", realEOF, ClassPeerClosed},
		{"deadline", realDeadline, ClassTimeout},
		{"canceled", realCancel, ClassCanceled},
		{"dns", realDNSFailure, ClassDNS},
		{"tls", realTLSMismatch, ClassTLS},
		{"local close", realLocalClose, ClassCanceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.event(t)
			require.Error(t, err)
			require.Equal(t, tc.want, Classify(err), "%v", err)
			wrapped := fmt.Errorf("calling the service: %w", &url.Error{Op: "Get", URL: "http://x", Err: err})
			require.Equal(t, tc.want, Classify(wrapped), "through url.Error and %%w")
			require.Equal(t, tc.want, Classify(errors.Join(errors.New("first"), wrapped)), "through errors.Join")
		})
	}
}

func realReset(t *testing.T) error {
	c := dialTracked(t, noRetry(), listen(t, resetServer).Addr().String())
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	return err
}

func realRefusal(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	return err
}

func realBrokenPipe(t *testing.T) error {
	c := dialTracked(t, noRetry(), listen(t, resetServer).Addr().String())
	c.peekAfter = int64(time.Hour) // let the writes reach the socket
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		_, err = c.Write([]byte("more"))
	}
	// The first write after the RST reports ECONNRESET, the next EPIPE.
	if errors.Is(err, syscall.ECONNRESET) {
		_, err = c.Write([]byte("more"))
	}
	require.ErrorIs(t, err, syscall.EPIPE)
	return err
}

func realEOF(t *testing.T) error {
	c := dialTracked(t, noRetry(), listen(t, func(c net.Conn) { c.Close() }).Addr().String())
	_, err := io.ReadFull(c, make([]byte, 4))
	require.ErrorIs(t, err, io.EOF)
	return err
}

func realDeadline(t *testing.T) error {
	c := dialTracked(t, noRetry(), listen(t, echo).Addr().String())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	return err
}

func realCancel(t *testing.T) error {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	require.NoError(t, err)
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = srv.Client().Do(req)
	return err
}

func realDNSFailure(t *testing.T) error {
	_, err := noRetry().Dial("tcp", "no-such-host.invalid:80")
	return err
}

func realTLSMismatch(t *testing.T) error {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	c, err := noRetry().Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	tc := tls.Client(c, &tls.Config{ServerName: "example.test", MinVersion: tls.VersionTLS12})
	require.NoError(t, tc.SetDeadline(time.Now().Add(5*time.Second)))
	return tc.Handshake()
}

func realLocalClose(t *testing.T) error {
	c := dialTracked(t, noRetry(), listen(t, echo).Addr().String())
	require.NoError(t, c.Close())
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
	return err
}

func TestClassifyNilAndUnknown(t *testing.T) {
	require.Equal(t, ClassNone, Classify(nil))
	require.Equal(t, ClassOther, Classify(errors.New("something else")))
	require.Equal(t, ClassTimeout, Classify(context.DeadlineExceeded))
	require.Equal(t, ClassTimeout, Classify(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}))
	require.Equal(t, ClassReset, Classify(os.NewSyscallError("accept", syscall.ECONNABORTED)))
	require.Equal(t, ClassUnreachable, Classify(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}))
	require.Equal(t, ClassUnreachable, Classify(os.NewSyscallError("connect", syscall.ENETUNREACH)))
}

// sqlStateErr stands in for a database driver's error type (pgconn.PgError
// has the same method); the real ones are exercised by the integration
// module against PostgreSQL.
type sqlStateErr string

func (e sqlStateErr) Error() string    { return "server ended the session " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestClassifySQLState(t *testing.T) {
	for code, want := range map[string]Class{
		"57P01": ClassPeerClosed, "57P02": ClassPeerClosed, "57P05": ClassPeerClosed,
		"57P03": ClassRefused, "08006": ClassPeerClosed, "08001": ClassRefused,
		"23505": ClassOther, // unique violation: not a connection failure
	} {
		require.Equal(t, want, Classify(fmt.Errorf("query: %w", sqlStateErr(code))), code)
	}
}

func TestClassString(t *testing.T) {
	want := []string{"none", "reset", "refused", "broken-pipe", "peer-closed", "timeout",
		"canceled", "unreachable", "dns", "tls", "other"}
	for i, name := range want {
		require.Equal(t, name, Class(i).String())
	}
	require.Equal(t, "other", Class(200).String())
}
