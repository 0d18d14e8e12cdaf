package rstpool_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/rstpool/rstpool"
)

// A Transport in an http.Client: the client gives up idle connections
// before the load balancer in front of the service does, and retries once
// what a reset on a reused connection interrupted when that is safe.
func ExampleTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()

	tr := &rstpool.Transport{
		Dialer: &rstpool.Dialer{
			Chain: rstpool.Chain{{Name: "AWS ALB", IdleTimeout: 60 * time.Second}},
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err) // a *rstpool.ConnError: class, reused, idle, likely cause
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body), tr.Stats().Requests, tr.Stats().Surfaced)
	// Output: hello 1 0
}
