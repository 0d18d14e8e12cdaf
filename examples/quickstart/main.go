// Command quickstart sends a few requests through rstpool.Transport, logs
// what rstpool does on stderr and prints its counters. Run it with the URL
// of a server of yours: go run . http://127.0.0.1:8080/
package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/rstpool/rstpool"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: quickstart URL")
		os.Exit(2)
	}
	url := os.Args[1]

	// Events (dials, retries, failures returned) as log lines on stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The hops between this client and the server, with their idle
	// timeouts: a load balancer that ends the client's connection (AWS ALB,
	// 60 s), then the server. The client keeps idle connections for ¾ of
	// the smallest hop on its own connection: 45 s.
	d := &rstpool.Dialer{
		Chain: rstpool.Chain{
			rstpool.MustHop("aws-alb"),
			{Name: "api", IdleTimeout: 2 * time.Minute},
		},
		Observer: rstpool.LogEvents(logger),
	}
	tr := &rstpool.Transport{Dialer: d}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	for range 3 {
		resp, err := client.Get(url)
		if err != nil {
			// err wraps the original: errors.Is(err, syscall.ECONNRESET) works.
			fmt.Printf("GET %s: %v (class %s)\n", url, err, rstpool.Classify(err))
			os.Exit(1)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("GET %s: %s, %d bytes\n", url, resp.Status, n)
	}

	fmt.Println(tr.Stats()) // transport: 3 requests, 0 retried (…), 0 denied, 0 surfaced
}
