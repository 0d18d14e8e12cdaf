package rstpool

import (
	"bytes"
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
// is a *ConnError that still is ECONNRESET, and a fresh connection is not
// retried.
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
	require.Zero(t, s.Retries())
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

// A body without GetBody is buffered up to the limit and reaches the
// server whole; a larger one streams with Expect: 100-continue.
func TestTransportBuffersSmallBodies(t *testing.T) {
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
	for _, tc := range []struct {
		body, expect string
	}{{"small", ""}, {"larger than eight", "100-continue"}} {
		req, err := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader(tc.body)))
		require.NoError(t, err)
		require.Nil(t, req.GetBody)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, seen{tc.body, tc.expect}, <-got)
		require.Empty(t, req.Header.Get("Expect"), "the caller's request is not modified")
	}
}

func TestPrepareBufferedBodyReplays(t *testing.T) {
	tr := &Transport{}
	req, err := http.NewRequest(http.MethodPut, "http://127.0.0.1/", io.NopCloser(bytes.NewReader([]byte("abc"))))
	require.NoError(t, err)
	r, err := tr.prepare(req)
	require.NoError(t, err)
	require.True(t, replayable(r))
	require.EqualValues(t, 3, r.ContentLength)
	for range 2 {
		r2, err := rewind(r)
		require.NoError(t, err)
		b, _ := io.ReadAll(r2.Body)
		require.Equal(t, "abc", string(b))
	}
}

// The learner keeps a destination's limit below the shortest gap that
// killed a connection, above the floor, and ignores gaps the client's own
// limit explains.
func TestLearnerLowersOnly(t *testing.T) {
	l := learner{floor: time.Second, base: 45 * time.Second}
	require.False(t, l.observe("a:1", 500*time.Millisecond), "below the floor")
	require.False(t, l.observe("a:1", 50*time.Second), "beyond the client's own limit")
	require.True(t, l.observe("a:1", 20*time.Second))
	d, ok := l.limit("a:1")
	require.True(t, ok)
	require.Equal(t, 15*time.Second, d)
	require.False(t, l.observe("a:1", 18*time.Second), "not lower")
	require.True(t, l.observe("a:1", 1200*time.Millisecond))
	d, _ = l.limit("a:1")
	require.Equal(t, time.Second, d, "never below the floor")
	_, ok = l.limit("b:1")
	require.False(t, ok)
	off := learner{floor: -1}
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
		require.Equal(t, want, destination(req), url)
	}
}

func TestAttemptWrapKeepsUnderlyingError(t *testing.T) {
	a := &attempt{conns: 1, info: httpGotConn(true, 2*time.Second)}
	err := a.wrap(io.EOF)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.True(t, errors.Is(err, io.EOF))
	require.True(t, ce.Reused)
	require.Equal(t, 2*time.Second, ce.Idle)
	require.Equal(t, io.EOF, (&attempt{}).wrap(io.EOF), "no connection: nothing to add")
}
