package rstpool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The edges of the promises: held connections, multi-step work, streaming
// bodies, a read failing while a write is in its syscall, TLS.

// A duplex request (the body is produced while the response streams back)
// gets its response as soon as the server sends it, through stock net/http
// and through rstpool alike, and the request's context ends it.
func TestTransportDuplexBodyStreams(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex() // HTTP/1; HTTP/2 is duplex anyway
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // answer before the body ends
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			_, _ = w.Write([]byte(strings.ToUpper(sc.Text()) + "\n"))
			w.(http.Flusher).Flush()
		}
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		base := func() *http.Transport {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			if proto == "h2c" {
				tr.Protocols = new(http.Protocols)
				tr.Protocols.SetUnencryptedHTTP2(true)
			}
			return tr
		}
		for name, rt := range map[string]http.RoundTripper{"stock": base(), "rstpool": &Transport{Base: base(), Dialer: noRetry()}} {
			t.Run(proto+" "+name, func(t *testing.T) { duplexExchange(t, rt, srv.URL) })
		}
	}

	// A body whose producer never writes: the context ends the request.
	// (Stock net/http waits in the body's Read until the producer gives up.)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // waits for the whole body before answering
	}))
	defer silent.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, silent.URL, pr)
	require.NoError(t, err)
	start := time.Now()
	_, err = (&Transport{Dialer: noRetry()}).RoundTrip(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second, "the context is honoured while the body streams")
}

// A connection upgraded by a 101 is the caller's: a WebSocket quiet beyond
// the idle limit stays usable.
func TestTransportUpgradedConnOutlivesIdleLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, brw)
	}))
	defer srv.Close()
	tr := &Transport{Dialer: &Dialer{RefusedRetry: -1, IdleTimeout: 50 * time.Millisecond, MaxLifetime: 100 * time.Millisecond}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	rw := resp.Body.(io.ReadWriteCloser)
	defer rw.Close()
	buf := make([]byte, 5)
	for range 2 {
		_, err = rw.Write([]byte("hello"))
		require.NoError(t, err)
		_, err = io.ReadFull(rw, buf)
		require.NoError(t, err)
		require.Equal(t, "hello", string(buf))
		time.Sleep(150 * time.Millisecond) // beyond the idle limit and the lifetime
	}
}

// tlsPair returns a server config and a client config that trusts it.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	client.ServerName = "example.com" // httptest's certificate names it
	return srv.TLS.Clone(), client
}

// twoSteps is non-idempotent work of two requests on one connection: it
// counts an order, then reads it back after a pause long enough for the
// check before the second write to run.
func twoSteps(c net.Conn) error {
	if _, err := lsCall(c, "INCR order"); err != nil {
		return err
	}
	time.Sleep(3 * DefaultPeekAfter)
	_, err := lsCall(c, "ECHO read-back")
	return err
}

// Two-step non-idempotent work whose connection the server closes after
// the first step: the second step fails before a byte of it leaves, but
// the first ran, so neither Do (plain or over TLS) nor Retry runs it again.
func TestTwoStepWorkIsNeverRepeated(t *testing.T) {
	serverTLS, clientTLS := tlsPair(t)
	for _, mode := range []string{"plain", "tls"} {
		t.Run(mode, func(t *testing.T) {
			srv := &lineServer{t: t, conns: map[net.Conn]struct{}{}, counts: map[string]int{}}
			cfg := PoolConfig{MaxSize: 1, PeekAfter: -1}
			if mode == "tls" {
				srv.tls = serverTLS
				cfg.Dial = func(ctx context.Context) (net.Conn, error) {
					c, err := noRetry().DialContext(ctx, "tcp", srv.addr)
					if err != nil {
						return nil, err
					}
					return tls.Client(c, clientTLS), nil
				}
			}
			srv.listen("127.0.0.1:0")
			t.Cleanup(srv.stop)
			p := poolFor(t, srv, cfg)

			srv.finNext.Store(1)
			err := p.Do(context.Background(), false, twoSteps)
			requireStepFailedBeforeWriting(t, err)
			require.Equal(t, 1, srv.count("order"), "Do ran the first step once")

			srv.finNext.Store(1)
			err = Retry(context.Background(), false, func(ctx context.Context) error {
				h, err := p.Acquire(ctx)
				if err != nil {
					return err
				}
				defer h.Destroy()
				return twoSteps(h.Conn())
			})
			requireStepFailedBeforeWriting(t, err)
			require.Equal(t, 2, srv.count("order"), "Retry ran the first step once")
		})
	}
}

func requireStepFailedBeforeWriting(t *testing.T, err error) {
	t.Helper()
	var ce *ConnError
	require.ErrorAs(t, err, &ce, "%v", err)
	require.Equal(t, "validate", ce.Op, "the check before the second step's write caught the close: %v", err)
	require.Positive(t, ce.Written, "the work's first step had left: %v", err)
	require.False(t, ce.NothingWritten())
}

// One-step work that never left, because the pooled connection's peer was
// gone, runs again on a new connection even when it is not idempotent:
// Retry saw the work's only handout write nothing.
func TestRetryRepeatsWorkThatNeverLeft(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, PeekAfter: -1})
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO warm", "warm")))
	srv.finNext.Store(1)
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO once", "once"))) // the server closes after it
	time.Sleep(3 * DefaultPeekAfter)
	runs := 0
	err := Retry(context.Background(), false, func(ctx context.Context) error {
		runs++
		h, err := p.Acquire(ctx)
		if err != nil {
			return err
		}
		if _, err = lsCall(h.Conn(), "INCR order"); err != nil {
			h.Destroy()
			return err
		}
		h.Release()
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, runs)
	require.Equal(t, 1, srv.count("order"))
}

// A read that fails while a write is still in its syscall sees the bytes
// of that write as written: Written never undercounts.
func TestReadFailingDuringWriteCountsTheWrite(t *testing.T) {
	accepted := make(chan *net.TCPConn, 1)
	ln := listen(t, func(c net.Conn) {
		tc := c.(*net.TCPConn)
		_ = tc.SetReadBuffer(4 << 10)
		accepted <- tc // never reads: the client's big write blocks in its syscall
	})
	c := dialTracked(t, noRetry(), ln.Addr().String())
	require.NoError(t, c.NetConn().(*net.TCPConn).SetWriteBuffer(4<<10))
	server := <-accepted
	defer server.Close()
	big := make([]byte, 8<<20)
	writeDone := make(chan error, 1)
	go func() { _, err := c.Write(big); writeDone <- err }()
	require.Eventually(t, func() bool { return c.nwritten.Load() >= int64(len(big)) }, time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // the write is in its syscall, blocked on flow control
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	var ce *ConnError
	require.ErrorAs(t, err, &ce, "%v", err)
	require.Equal(t, "read", ce.Op)
	select {
	case err := <-writeDone:
		t.Fatalf("the write finished before the read failed: %v", err)
	default:
	}
	require.GreaterOrEqual(t, ce.Written, int64(len(big)), "the write counts from the moment it started")
	require.False(t, ce.NothingWritten())
	_ = server.SetLinger(0)
	_ = server.Close()
	require.Error(t, <-writeDone)
	require.Less(t, c.Stats().BytesWritten, int64(len(big)), "once the write returned, only what the kernel took")
}

// A TLS alert from the peer is class tls, not other.
func TestTLSAlertIsClassTLS(t *testing.T) {
	serverTLS, clientTLS := tlsPair(t)
	serverTLS.ClientAuth = tls.RequireAnyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	nc, err := noRetry().DialContext(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	c := tls.Client(nc, clientTLS)
	defer c.Close()
	err = c.Handshake()
	if err == nil { // TLS 1.3: the client learns of the alert at its first read
		_, err = c.Read(make([]byte, 1))
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "remote error")
	require.Equal(t, ClassTLS, Classify(err), "%v", err)
}

// The client's own retirements are class canceled: the peer did nothing.
func TestClientRetirementsAreNotPeerClosed(t *testing.T) {
	for _, err := range []error{ErrIdleLimit, ErrMaxLifetime, &ConnError{Op: "validate", Class: Classify(ErrIdleLimit), Err: ErrIdleLimit}} {
		require.Equal(t, ClassCanceled, Classify(err), "%v", err)
		require.True(t, connFailure(err), "still retried when nothing was written: %v", err)
	}
	require.Equal(t, ClassPeerClosed, Classify(ErrPeerClosed))
}

// Close returns within its context even while upkeep pings a black-holed
// server with a long PingTimeout.
func TestPoolCloseWithinContextAgainstABlackHole(t *testing.T) {
	srv := lsStart(t)
	p, err := NewPool(PoolConfig{Addr: srv.addr, Dialer: noRetry(), MaxSize: 2, MinIdle: 2, Ping: lsPing,
		PingTimeout: 10 * time.Second, KeepAliveInterval: 30 * time.Millisecond, UpkeepInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 2 }, 2*time.Second, 5*time.Millisecond)
	srv.reapMode.Store(reapSilent)
	srv.reapAfter.Store(int64(time.Millisecond)) // the server stops answering
	require.Eventually(t, func() bool { return srv.pingCount() > 0 || p.Stats().AcquiredConns > 0 }, 2*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // upkeep is stuck in a ping
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = p.Close(ctx)
	require.Less(t, time.Since(start), time.Second, "Close ran past its context")
}

// The next holder of a pooled connection does not inherit a deadline.
func TestReleaseClearsTheDeadline(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.NoError(t, h.Conn().SetDeadline(time.Now().Add(time.Millisecond)))
	h.Release()
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO x", "x")))
	require.Equal(t, 1, srv.acceptCount(), "the same connection, usable")
}

// A ping at checkout is the pool's, not the caller's: Written counts from
// after it.
func TestCheckoutPingIsNotTheCallersWork(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, Ping: lsPing, PingAfter: time.Nanosecond})
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO x", "x")))
	pings := srv.pingCount()
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	defer h.Release()
	require.Equal(t, pings+1, srv.pingCount(), "the checkout pinged")
	c := h.Conn().(*Conn)
	require.Equal(t, c.nwritten.Load(), c.markW.Load(), "the checkout mark is after the ping")
}

// A pool whose Dial returns connections no Dialer dialed says so, once.
func TestPoolReportsUntrackedConnsOnce(t *testing.T) {
	srv := lsStart(t)
	var events []Event
	p := poolFor(t, srv, PoolConfig{MaxSize: 2, Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.addr)
	}, Observer: func(e Event) { events = append(events, e) }})
	poolWarm(t, p, 2)
	require.Equal(t, int64(2), p.Stats().Untracked)
	require.Len(t, events, 1)
	require.Equal(t, EventUntracked, events[0].Kind)
	require.Error(t, events[0].Err)
}

// A Retry around an application error runs it once; a failure of a client
// that is not an rstpool consumer runs again only when idempotent.
func TestRetryNeverRepeatsAnApplicationError(t *testing.T) {
	runs := 0
	appErr := errors.New("insufficient funds")
	err := Retry(context.Background(), true, func(context.Context) error { runs++; return appErr })
	require.Equal(t, appErr, err)
	require.Equal(t, 1, runs)
	runs = 0
	reset := &ConnError{Op: "read", Class: ClassReset, Err: syscall.ECONNRESET}
	_ = Retry(context.Background(), false, func(context.Context) error { runs++; return reset })
	require.Equal(t, 1, runs)
}

// duplexExchange sends a body line by line through rt and reads each
// answer line before sending the next: the response must come back while
// the body is still open.
func duplexExchange(t *testing.T, rt http.RoundTripper, url string) {
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	require.NoError(t, err)
	start := time.Now()
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	var resp *http.Response
	select {
	case resp = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no response while the body is still open: the body was held back")
	}
	require.NotNil(t, resp)
	defer resp.Body.Close()
	t.Logf("response headers after %v", time.Since(start))
	br := bufio.NewReader(resp.Body)
	for _, word := range []string{"one", "two"} {
		_, err = pw.Write([]byte(word + "\n"))
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, strings.ToUpper(word)+"\n", line, "each line comes back before the next is sent")
	}
}
