package rstpool

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The Transport benchmarks send the same requests through stock net/http
// and through Transport over the same base, in one run, serially and in
// parallel: compare with benchstat -col /client.

// BenchmarkGET is a keep-alive GET on loopback over HTTP/1.1.
func BenchmarkGET(b *testing.B) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	benchClients(b, benchBase, func(b *testing.B, c *http.Client) { benchGet(b, c, srv.URL) })
}

// BenchmarkGETClientTimeout is BenchmarkGET through an http.Client with a
// Timeout: every request carries a context with a deadline of its own.
func BenchmarkGETClientTimeout(b *testing.B) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	benchClients(b, benchBase, func(b *testing.B, c *http.Client) {
		c.Timeout = 10 * time.Second
		benchGet(b, c, srv.URL)
	})
}

// BenchmarkGETContextTimeout is BenchmarkGET with the deadline on each
// request's context instead (context.WithTimeout), the way that costs a
// wrapping RoundTripper no more than stock: net/http's Client arms a timer
// and a goroutine per request for a Timeout unless its Transport is
// net/http's own (knownRoundTripperImpl in net/http/client.go).
func BenchmarkGETContextTimeout(b *testing.B) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	benchClients(b, benchBase, func(b *testing.B, c *http.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		benchDoCtx(b, c, ctx, http.MethodGet, srv.URL, nil)
	})
}

// BenchmarkPOST is a keep-alive POST of a 4 KiB body (a bytes.Reader, so
// the request has GetBody, as http.NewRequest gives it) over HTTP/1.1.
func BenchmarkPOST(b *testing.B) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	body := bytes.Repeat([]byte("x"), 4<<10)
	benchClients(b, benchBase, func(b *testing.B, c *http.Client) {
		benchDo(b, c, http.MethodPost, srv.URL, body)
	})
}

// BenchmarkGETHTTP2 is a GET over HTTP/2 with TLS, on one connection the
// requests share.
func BenchmarkGETHTTP2(b *testing.B) {
	srv := httptest.NewUnstartedServer(benchHandler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	base := func() *http.Transport {
		tr := benchBase()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		tr.ForceAttemptHTTP2 = true
		return tr
	}
	benchClients(b, base, func(b *testing.B, c *http.Client) {
		resp := benchDo(b, c, http.MethodGet, srv.URL, nil)
		if resp.ProtoMajor != 2 {
			b.Fatalf("got %s, want HTTP/2", resp.Proto)
		}
	})
}

// benchHandler drains the request body and answers "ok".
func benchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
}

// benchClients runs do in sub-benchmarks mode=serial|parallel and
// client=stock|rstpool, each with a transport of its own built from base.
func benchClients(b *testing.B, base func() *http.Transport, do func(*testing.B, *http.Client)) {
	clients := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"stock", func() http.RoundTripper { return base() }},
		{"rstpool", func() http.RoundTripper { return &Transport{Base: base()} }},
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, c := range clients {
			b.Run("mode="+mode+"/client="+c.name, func(b *testing.B) {
				rt := c.rt()
				defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				client := &http.Client{Transport: rt}
				do(b, client) // connect outside the measurement
				benchLoop(b, mode, func() { do(b, client) })
			})
		}
	}
}

func benchBase() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return tr
}

func benchGet(b *testing.B, c *http.Client, url string) {
	benchDo(b, c, http.MethodGet, url, nil)
}

// benchDo sends one request, reads the response to its end and closes it.
func benchDo(b *testing.B, c *http.Client, method, url string, body []byte) *http.Response {
	return benchDoCtx(b, c, context.Background(), method, url, body)
}

// benchDoCtx is benchDo with the request's context.
func benchDoCtx(b *testing.B, c *http.Client, ctx context.Context, method, url string, body []byte) *http.Response {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}
