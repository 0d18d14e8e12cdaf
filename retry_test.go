package rstpool

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pipeConn is a tracked connection on an in-memory pipe, for attempts whose
// counts a test sets.
func pipeConn(t *testing.T) *Conn {
	p1, p2 := net.Pipe()
	t.Cleanup(func() { p1.Close(); p2.Close() })
	return newConn(p1, DefaultPeekAfter, false)
}

// The Transport's facts for the retry rule, case by case: the connection's
// counts since the attempt's checkout decide "nothing written" and
// "answered"; an untracked connection counts as both written and answered.
func TestRetryReason(t *testing.T) {
	reset := &ConnError{Op: "read", Class: ClassReset, Written: 10, Err: syscall.ECONNRESET}
	attemptWith := func(wrote, answered bool) *attempt {
		c := pipeConn(t)
		a := &attempt{conns: 1, conn: c}
		if wrote {
			c.nwritten.Add(10)
		}
		if answered {
			a.onFirstByte()
		}
		return a
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	get := httptest.NewRequest(http.MethodGet, "http://h/", nil)
	post, _ := http.NewRequest(http.MethodPost, "http://h/", strings.NewReader("x"))
	keyed, _ := http.NewRequest(http.MethodPost, "http://h/", strings.NewReader("x"))
	keyed.Header.Set("Idempotency-Key", "k1")
	unreplayable := httptest.NewRequest(http.MethodPut, "http://h/", strings.NewReader("x"))
	unreplayable.GetBody = nil
	for _, tc := range []struct {
		name string
		r    *http.Request
		a    *attempt
		err  error
		want RetryReason
	}{
		{"no connection, no connection error", get, &attempt{}, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, RetryNone},
		{"reset before the connection was handed out (a TLS handshake): its error says so", get, &attempt{}, reset, RetryIdempotent},
		{"dial error", get, attemptWith(false, false), &ConnError{Op: "dial", Class: ClassRefused, Err: syscall.ECONNREFUSED}, RetryNone},
		{"caller canceled", get.WithContext(canceled), attemptWith(false, false), reset, RetryNone},
		{"body gone", unreplayable, attemptWith(true, false), reset, RetryNone},
		{"not a connection failure", get, attemptWith(true, false), errors.New("malformed response"), RetryNone},
		{"nothing written", post, attemptWith(false, false), reset, RetryNothingWritten},
		{"GET written, no answer yet", get, attemptWith(true, false), reset, RetryIdempotent},
		{"GET after the answer began", get, attemptWith(true, true), reset, RetryNone},
		{"POST written", post, attemptWith(true, false), reset, RetryNone},
		{"POST with Idempotency-Key", keyed, attemptWith(true, false), reset, RetryIdempotent},
		{"untracked connection: written, as far as anyone knows", post, &attempt{conns: 1}, reset, RetryNone},
		{"untracked connection, idempotent", get, &attempt{conns: 1}, reset, RetryIdempotent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Transport{}
			require.NoError(t, tr.init())
			got := tr.k.retry(tc.r.Context(), tc.a.failure(tc.r, nil, tc.err, false, tr.idempotent(tc.r)), 0, false, time.Time{})
			require.Equal(t, tc.want, got.reason)
		})
	}
	tr := &Transport{RetryBudget: RetryBudget{Ratio: -1}}
	require.NoError(t, tr.init())
	got := tr.k.retry(context.Background(), attemptWith(false, false).failure(get, nil, reset, false, true), 0, false, time.Time{})
	require.Equal(t, RetryNone, got.reason, "no budget")
	require.Equal(t, int64(1), tr.Stats().Denied)
}

func TestRetryMethodsConfigurable(t *testing.T) {
	tr := &Transport{RetryMethods: []string{"GET"}}
	require.True(t, tr.idempotent(httptest.NewRequest("GET", "http://h/", nil)))
	require.False(t, tr.idempotent(httptest.NewRequest("PUT", "http://h/", nil)))
	require.True(t, (&Transport{}).idempotent(httptest.NewRequest("QUERY", "http://h/", nil)))
	require.Equal(t, "nothing-written", RetryNothingWritten.String())
}
