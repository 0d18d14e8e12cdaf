package rstpool

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func httpGotConn(reused bool, idle time.Duration) httptrace.GotConnInfo {
	return httptrace.GotConnInfo{Reused: reused, WasIdle: reused, IdleTime: idle}
}

// The decision, rule by rule. An attempt without a tracked connection
// counts as written, so only the method decides.
func TestRetryReason(t *testing.T) {
	failed := errors.New("connection reset")
	reused := &attempt{conns: 1, info: httpGotConn(true, time.Second)}
	fresh := &attempt{conns: 1, info: httpGotConn(false, 0)}
	pooled := &attempt{conns: 1, info: httptrace.GotConnInfo{WasIdle: true, IdleTime: time.Second}}
	none := &attempt{}
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
		{"no connection", get, none, failed, RetryNone},
		{"dial error", get, reused, &ConnError{Op: "dial", Err: failed}, RetryNone},
		{"caller canceled", get.WithContext(canceled), reused, failed, RetryNone},
		{"body gone", unreplayable, reused, failed, RetryNone},
		{"fresh connection", get, fresh, failed, RetryNone},
		{"idempotent on reused", get, reused, failed, RetryIdempotent},
		{"idempotent on a never-used conn that waited in the pool", get, pooled, failed, RetryIdempotent},
		{"POST on reused, maybe written", post, reused, failed, RetryNone},
		{"POST with Idempotency-Key", keyed, reused, failed, RetryIdempotent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, (&Transport{}).retryReason(tc.r, tc.a, tc.err))
		})
	}
}

func TestRetryMethodsConfigurable(t *testing.T) {
	tr := &Transport{RetryMethods: []string{"GET"}}
	require.True(t, tr.idempotent(httptest.NewRequest("GET", "http://h/", nil)))
	require.False(t, tr.idempotent(httptest.NewRequest("PUT", "http://h/", nil)))
	require.True(t, (&Transport{}).idempotent(httptest.NewRequest("QUERY", "http://h/", nil)))
	require.Equal(t, "nothing-written", RetryNothingWritten.String())
}
