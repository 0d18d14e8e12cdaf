package rstpool

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGET compares a keep-alive GET on loopback through stock
// net/http and through Transport, serially and in parallel. Compare with
// benchstat -col /client.
func BenchmarkGET(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	clients := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"stock", func() http.RoundTripper { return benchBase() }},
		{"rstpool", func() http.RoundTripper { return &Transport{Base: benchBase()} }},
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, c := range clients {
			b.Run("mode="+mode+"/client="+c.name, func(b *testing.B) {
				rt := c.rt()
				defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				client := &http.Client{Transport: rt}
				b.ReportAllocs()
				if mode == "serial" {
					for b.Loop() {
						benchGet(b, client, srv.URL)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						benchGet(b, client, srv.URL)
					}
				})
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
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}
