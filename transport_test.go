package rstpool

import (
	"context"
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
	require.EqualValues(t, 3, tr.Stats().Requests)
	require.Zero(t, tr.Stats().Surfaced)
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
// byte of the response, is retried once on a new connection, and only once:
// its Dialer retries no refused connect, so no reset on arrival either.
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
	require.EqualValues(t, 1, s.Retried, "its retry was reset on arrival too, and not retried")
	require.EqualValues(t, 1, s.RetriedIdempotent)
	require.EqualValues(t, 1, s.SurfacedBy[ClassReset])
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
	require.Zero(t, tr.Stats().Retried)
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
	r, rb, _ := tr.prepare(newReq("abc"), &destName{s: "h:1"})
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

	r, rb, _ = tr.prepare(newReq("never read"), &destName{s: "h:1"})
	require.True(t, replayable(r, rb), "not a byte read: the body itself can go")
	r2, _ = rewind(r, rb)
	b, _ = io.ReadAll(r2.Body)
	require.Equal(t, "never read", string(b))

	r, rb, _ = tr.prepare(newReq("beyond the limit"), &destName{s: "h:1"})
	_, _ = io.ReadAll(r.Body)
	require.False(t, replayable(r, rb))
}

type readCloser struct {
	io.Reader
	closed *int
}

func (r readCloser) Close() error { *r.closed++; return nil }

// The learner learns a limit only from idle deaths that agree: at least
// learnAgree of them, none near a failure that is no such evidence (a
// blip's signature), none refuted by a connection that answered after a gap
// as long. The limit is three quarters of the shortest, and goes when a
// connection answers after that gap.
func TestLearner(t *testing.T) {
	var events []Event
	l := learner{}
	l.init(time.Second, 45*time.Second, func(e Event) { events = append(events, e) })
	a, b := &destName{s: "a:1"}, &destName{s: "b:1"}
	limit := func(d *destName) time.Duration { lim, _ := l.limitFor(d, false); return lim }

	l.died(a, 30*time.Second)
	require.Zero(t, limit(a), "one is an anecdote")
	l.age(2 * learnBlip)
	l.died(a, 20*time.Second)
	require.Zero(t, limit(a), "the second is not clear of a blip yet")
	l.age(2 * learnBlip)
	require.Equal(t, 15*time.Second, limit(a), "two agree: three quarters of the shortest")
	_, explore := l.limitFor(a, true)
	require.Zero(t, explore, "just learned: no exploring yet")
	l.age(learnExplore)
	_, explore = l.limitFor(a, true)
	require.Equal(t, 20*time.Second, explore, "an idempotent request may go past the limit, on a connection idle as long as the shortest death")
	_, explore = l.limitFor(a, false)
	require.Zero(t, explore, "non-idempotent work never explores")

	l.answered(a, 21*time.Second)
	require.Equal(t, 15*time.Second, limit(a), "within an eighth of the shortest death: the clocks of client and hop differ")
	l.answered(a, 23*time.Second)
	require.Zero(t, limit(a), "a connection answered after a clearly longer gap: refuted")

	// A blip: idle deaths beside a failure that is no evidence teach nothing.
	for range learnAgree + 1 {
		l.noise(b)
		l.died(b, 5*time.Second)
		l.age(2 * learnBlip)
	}
	l.died(b, 5*time.Second)
	require.Zero(t, limit(b), "deaths next to a blip")
	// Deaths no longer than a gap after which a connection answered are refuted.
	l.answered(b, 10*time.Second)
	for range learnAgree + 1 {
		l.died(b, 8*time.Second)
		l.age(2 * learnBlip)
	}
	require.Zero(t, limit(b), "refuted by an answer after a longer gap")
	l.died(b, 500*time.Millisecond)
	require.Zero(t, limit(b), "below the floor: noise")

	require.Len(t, events, 2, "set once, dropped once")
	require.Equal(t, EventLearned, events[0].Kind)
	require.Equal(t, 15*time.Second, events[0].Duration)
	require.Zero(t, events[1].Duration)

	off := learner{}
	off.init(-1, 0, nil)
	off.died(a, 20*time.Second)
	require.Empty(t, off.snapshot())
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

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An attempt sends its request with the attempt's trace on the request's
// context, composed with the caller's own trace when there is one; a
// request without a context of its own costs it one allocation (the copy
// of the request), not two (issue 17).
func TestAttemptRunTracesAndAllocates(t *testing.T) {
	a := getAttempt()
	defer putAttempt(a)
	var seen *httptrace.ClientTrace
	var key any
	resp := &http.Response{}
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen, key = httptrace.ContextClientTrace(r.Context()), r.Context().Value(testKey{})
		return resp, nil
	})
	bg := httptest.NewRequest(http.MethodGet, "http://h/", nil)
	own := bg.WithContext(context.WithValue(context.Background(), testKey{}, "v"))
	var callerSaw bool
	traced := bg.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { callerSaw = true },
	}))
	for _, c := range []struct {
		name   string
		r      *http.Request
		allocs float64
	}{{"background", bg, 1}, {"own context", own, 2}} {
		_, err := a.run(rt, c.r)
		require.NoError(t, err)
		require.Same(t, a.trace, seen, c.name)
		require.Equal(t, c.r.Context().Value(testKey{}), key, c.name)
		require.Equal(t, c.allocs, testing.AllocsPerRun(100, func() { _, _ = a.run(rt, c.r) }), c.name)
	}
	_, err := a.run(rt, traced)
	require.NoError(t, err)
	require.NotSame(t, a.trace, seen, "the caller's trace is composed with one of the request's own")
	seen.GotFirstResponseByte()
	require.True(t, callerSaw)
	require.NotZero(t, a.firstByte.Load())
}

type testKey struct{}
