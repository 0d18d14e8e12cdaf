package rstpool

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTransportZeroValueServes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	var tr Transport
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: &tr}
	for range 3 {
		resp, err := client.Get(srv.URL)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, "ok", string(body))
	}
	require.EqualValues(t, 3, tr.Stats().Requests())
	require.Zero(t, tr.Stats().Errors())
	require.Equal(t, DefaultIdleTimeout, tr.rt.IdleConnTimeout)
	require.NotNil(t, tr.rt.HTTP2)
	require.Equal(t, DefaultHTTP2PingAfter, tr.rt.HTTP2.SendPingTimeout)
}

func TestTransportDoesNotModifyBase(t *testing.T) {
	base := &http.Transport{IdleConnTimeout: 10 * time.Minute}
	tr := &Transport{Base: base, Dialer: &Dialer{Chain: Chain{{Name: "lb", IdleTimeout: 4 * time.Second}}}}
	require.NoError(t, tr.init())
	require.Equal(t, 10*time.Minute, base.IdleConnTimeout)
	require.Nil(t, base.DialContext)
	require.Equal(t, 3*time.Second, tr.rt.IdleConnTimeout, "¾ of the smallest hop")
	require.True(t, tr.fresh.DisableKeepAlives)
}

func TestTransportReportsBadDialer(t *testing.T) {
	tr := &Transport{Dialer: &Dialer{KeepAliveCount: 1000}}
	_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil))
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
}

// A server that resets every connection on the first request: the error
// is a *ConnError that still is ECONNRESET; the GET, which failed before a
// byte of the response, is retried once on a new connection, and only once.
func TestTransportErrorWrapsReset(t *testing.T) {
	ln := listen(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 1024))
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	})
	tr := &Transport{Dialer: noRetry()}
	defer tr.CloseIdleConnections()
	_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil))
	require.Error(t, err)
	require.ErrorIs(t, err, syscall.ECONNRESET)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.False(t, ce.Reused)
	require.Equal(t, ClassReset, ce.Class)
	s := tr.Stats()
	require.EqualValues(t, 1, s.Retries())
	require.EqualValues(t, 1, s.RetriesBy(RetryIdempotent))
	require.EqualValues(t, 1, s.ErrorsBy(ClassReset))
}

func TestTransportRefusedIsDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	tr := &Transport{Dialer: noRetry()}
	_, err = tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://"+addr+"/", nil))
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "dial", ce.Op)
	require.Zero(t, tr.Stats().Retries())
}

// A body reaches the server whole whether or not a copy is kept; only a
// body of known length above the threshold says "Expect: 100-continue": a
// body of unknown length may be a duplex stream.
func TestTransportExpectContinueOnlyForKnownLargeBodies(t *testing.T) {
	type seen struct {
		body   string
		expect string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{string(b), r.Header.Get("Expect")}
	}))
	defer srv.Close()
	tr := &Transport{MaxBufferedBody: 8, ExpectContinueBody: 8}
	defer tr.CloseIdleConnections()
	unknown := func(s string) io.Reader { return io.NopCloser(strings.NewReader(s)) }
	for _, tc := range []struct {
		body   io.Reader
		want   string
		expect string
	}{
		{unknown("small"), "small", ""},
		{unknown("larger than eight"), "larger than eight", ""},
		{strings.NewReader("known and larger"), "known and larger", "100-continue"},
	} {
		req, err := http.NewRequest(http.MethodPost, srv.URL, tc.body)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, seen{tc.want, tc.expect}, <-got)
		require.Empty(t, req.Header.Get("Expect"), "the caller's request is not modified")
	}
}

// A body without GetBody that was read whole within the limit is sent
// again from its copy; one never read is sent again as it is; one read
// beyond the limit cannot be.
func TestReplayBody(t *testing.T) {
	tr := &Transport{MaxBufferedBody: 4}
	closed := 0
	newReq := func(body string) *http.Request {
		req, err := http.NewRequest(http.MethodPut, "http://127.0.0.1/", readCloser{strings.NewReader(body), &closed})
		require.NoError(t, err)
		return req
	}
	r, rb := tr.prepare(newReq("abc"))
	_, _ = io.ReadAll(r.Body)
	require.NoError(t, r.Body.Close(), "net/http closes it when an attempt fails")
	require.Zero(t, closed, "the caller's body stays open until the Transport is done")
	require.True(t, replayable(r, rb))
	r2, err := rewind(r, rb)
	require.NoError(t, err)
	b, _ := io.ReadAll(r2.Body)
	require.Equal(t, "abc", string(b))
	rb.finish()
	require.Equal(t, 1, closed)

	r, rb = tr.prepare(newReq("never read"))
	require.True(t, replayable(r, rb), "not a byte read: the body itself can go")
	r2, _ = rewind(r, rb)
	b, _ = io.ReadAll(r2.Body)
	require.Equal(t, "never read", string(b))

	r, rb = tr.prepare(newReq("beyond the limit"))
	_, _ = io.ReadAll(r.Body)
	require.False(t, replayable(r, rb))
}

type readCloser struct {
	io.Reader
	closed *int
}

func (r readCloser) Close() error { *r.closed++; return nil }

// The learner keeps a destination's limit at three quarters of the
// shortest gap after which a connection died while idle, takes gaps below
// the floor as chance, and gives a limit back when the evidence stops.
func TestLearner(t *testing.T) {
	var events []Event
	l := learner{}
	l.init(time.Second, 45*time.Second, func(e Event) { events = append(events, e) })
	require.False(t, l.observe("a:1", 500*time.Millisecond), "below the floor")
	require.False(t, l.observe("a:1", 70*time.Second), "beyond the client's own limit")
	require.True(t, l.observe("a:1", 20*time.Second))
	require.Equal(t, 15*time.Second, l.limit("a:1"))
	require.False(t, l.observe("a:1", 22*time.Second), "not lower")
	require.True(t, l.observe("a:1", 1200*time.Millisecond))
	require.Equal(t, 900*time.Millisecond, l.limit("a:1"), "below the floor when the evidence says so")
	require.Zero(t, l.limit("b:1"))

	l.limits["a:1"].at -= int64(learnRecoverAfter) // a minute without evidence
	require.Equal(t, 1800*time.Millisecond, l.limit("a:1"), "doubled")
	l.limits["a:1"].limit, l.limits["a:1"].at = 30*time.Second, l.limits["a:1"].at-int64(10*learnRecoverAfter)
	require.Zero(t, l.limit("a:1"), "at the Dialer's own limit: dropped")
	require.Len(t, events, 4)
	require.Equal(t, EventLearned, events[0].Kind)

	off := learner{}
	off.init(-1, 0, nil)
	require.False(t, off.observe("a:1", 20*time.Second))
}

func TestDestination(t *testing.T) {
	for url, want := range map[string]string{
		"http://example.com/x":   "example.com:80",
		"https://example.com/x":  "example.com:443",
		"http://127.0.0.1:8080/": "127.0.0.1:8080",
		"https://[::1]:8443/":    "[::1]:8443",
	} {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		require.Equal(t, want, requestAddr(req), url)
	}
}

func TestAttemptWrapKeepsUnderlyingError(t *testing.T) {
	a := &attempt{conns: 1, info: httptrace.GotConnInfo{Reused: true, WasIdle: true, IdleTime: 2 * time.Second}}
	err := a.wrap(io.EOF)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.True(t, errors.Is(err, io.EOF))
	require.True(t, ce.Reused)
	require.Equal(t, 2*time.Second, ce.Idle)
	require.Equal(t, io.EOF, (&attempt{}).wrap(io.EOF), "no connection: nothing to add")
}
