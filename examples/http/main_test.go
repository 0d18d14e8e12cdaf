package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Against its own server: the pause outlasts the idle limit (¾ of the
// server's keep-alive), so the last request goes out on a new connection.
func TestRunOwnServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, options{serverIdle: 400 * time.Millisecond, pause: 500 * time.Millisecond}))
	require.Regexp(t, regexp.MustCompile(`^`+
		`GET http://127\.0\.0\.1:\d+/: 200 OK "hello" \(new connection\)\n`+
		`GET http://127\.0\.0\.1:\d+/: 200 OK "hello" \(reused, idle \S+\)\n`+
		`pause 500ms \(the client's idle limit is 300ms\)\n`+
		`GET http://127\.0\.0\.1:\d+/: 200 OK "hello" \(new connection\)\n`+
		`requests 3, retries 0, errors 0\n$`), out.String())
}

// Against a server given by URL: a pause within the idle limit keeps the
// connection.
func TestRunURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "from httptest")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, options{url: srv.URL, serverIdle: 10 * time.Second, pause: 50 * time.Millisecond}))
	require.Regexp(t, regexp.MustCompile(`^`+
		`GET http://127\.0\.0\.1:\d+: 200 OK "from httptest" \(new connection\)\n`+
		`GET http://127\.0\.0\.1:\d+: 200 OK "from httptest" \(reused, idle \S+\)\n`+
		`pause 50ms \(the client's idle limit is 7\.5s\)\n`+
		`GET http://127\.0\.0\.1:\d+: 200 OK "from httptest" \(reused, idle \S+\)\n`+
		`requests 3, retries 0, errors 0\n$`), out.String())
}

// A server that is not there: the error names the request and its class.
func TestRunRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, io.Discard, options{url: url, serverIdle: time.Second})
	require.ErrorContains(t, err, "GET "+url)
	require.ErrorContains(t, err, "(class refused)")
}
