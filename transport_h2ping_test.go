package rstpool

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool/internal/faultproxy"
)

// A middlebox that silently forgets an idle HTTP/2 connection: the stock
// client, without health pings, sends the next request into the void and
// waits for its own timeout; rstpool's Transport pings the idle connection,
// finds it silent within the ping timeout, drops it, and the next request
// goes out on a new connection.
func TestHTTP2PingFindsSilentConnection(t *testing.T) {
	c := &tsCase{name: "h2c silent", h2c: true}
	for _, useRstpool := range []bool{false, true} {
		_, srv := c.startServer(t)
		p, err := faultproxy.Start(faultproxy.Config{
			Upstream:    srv.Listener.Addr().String(),
			IdleTimeout: 300 * time.Millisecond,
			IdleAction:  faultproxy.ActionDrop,
		})
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })

		var rt http.RoundTripper = c.base(srv)
		if useRstpool {
			base := c.base(srv)
			base.HTTP2 = &http.HTTP2Config{SendPingTimeout: 500 * time.Millisecond, PingTimeout: 200 * time.Millisecond}
			rt = &Transport{Base: base, Dialer: noRetry()}
		}
		client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
		t.Cleanup(client.CloseIdleConnections)
		get := func() error {
			resp, err := client.Get("http://" + p.Addr() + "/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			require.Equal(t, 2, resp.ProtoMajor, "the case is about HTTP/2")
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		require.NoError(t, get())
		time.Sleep(time.Second) // forgotten at 300 ms; rstpool pings at 500 ms, gives up at 700 ms
		err = get()
		if useRstpool {
			require.NoError(t, err, "the ping found the silent connection before reuse")
			require.Equal(t, int64(2), p.Stats().Accepted, "the second request went out on a new connection")
		} else {
			require.Error(t, err, "stock reuses the forgotten connection")
			require.Equal(t, ClassTimeout, Classify(err))
		}
		require.Positive(t, p.Stats().ReapedDrop)
	}
}

// Row 9: the Transport keeps no reference to an HTTP/2 connection it closed.
// net/http does, for a while, with or without rstpool: the health-check
// timer that SendPingTimeout arms is never stopped when the connection
// closes (go.dev/issue/80920), so it holds the connection, its buffers and
// TLS state until it fires, one SendPingTimeout after the connection's last
// frame. Without pings a closed and dropped connection is garbage once its
// read loop ended; with them, once the timer fired.
func TestHTTP2ClosedConnectionsAreFreed(t *testing.T) {
	c := &tsCase{name: "h2 tls", tls: true}
	_, srv := c.startServer(t)
	const pingAfter = 300 * time.Millisecond
	for _, ping := range []bool{false, true} {
		var conns [2][]weak.Pointer[tls.Conn] // stock's, rstpool's
		for i, useRstpool := range []bool{false, true} {
			base := c.base(srv)
			base.HTTP2 = &http.HTTP2Config{} // no pings
			if ping {
				base.HTTP2 = &http.HTTP2Config{SendPingTimeout: pingAfter, PingTimeout: pingAfter}
			}
			var rt http.RoundTripper = base
			if useRstpool {
				rt = &Transport{Base: base, Dialer: noRetry()}
			}
			conns[i] = h2Conns(t, rt, srv.URL, 4)
		}
		within := 2 * time.Second // the read loops end: at once on a quiet machine
		if ping {
			time.Sleep(200 * time.Millisecond)
			runtime.GC()
			t.Logf("pings: closed connections still held after 200ms: stock %d of 4, rstpool %d of 4", liveConns(conns[0]), liveConns(conns[1]))
			within = pingAfter + 2*time.Second
		}
		freed := func() bool { runtime.GC(); return liveConns(conns[0]) == 0 && liveConns(conns[1]) == 0 }
		if !assert.Eventually(&noFail{}, freed, within, 20*time.Millisecond) {
			// net/http itself was slow to let go (under -race in a busy
			// package run): rstpool must hold no more than stock.
			stock, ours := liveConns(conns[0]), liveConns(conns[1])
			t.Logf("pings %v: after %v still held: stock %d of 4, rstpool %d of 4", ping, within, stock, ours)
			require.LessOrEqual(t, ours, stock, "pings %v: rstpool holds closed connections stock does not", ping)
		}
	}
}

// noFail is an assert.TestingT that records nothing: a first look whose
// failure the test judges itself.
type noFail struct{}

func (noFail) Errorf(string, ...any) {}

// h2Conns sends n requests through rt, each on a connection of its own
// (the idle one closed after each), drops rt, and returns weak pointers to
// the connections.
func h2Conns(t *testing.T, rt http.RoundTripper, url string, n int) []weak.Pointer[tls.Conn] {
	var mu sync.Mutex
	var conns []weak.Pointer[tls.Conn]
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if tc, ok := i.Conn.(*tls.Conn); ok {
			mu.Lock()
			conns = append(conns, weak.Make(tc))
			mu.Unlock()
		}
	}}
	client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	for range n {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.Equal(t, 2, resp.ProtoMajor, "the case is about HTTP/2")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, conns, n)
	return conns
}

func liveConns(conns []weak.Pointer[tls.Conn]) int {
	n := 0
	for _, w := range conns {
		if w.Value() != nil {
			n++
		}
	}
	return n
}
