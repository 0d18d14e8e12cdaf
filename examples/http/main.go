// Command http sends GET requests through an rstpool.Transport: its
// connections dial through an rstpool.Dialer, are given up before the
// declared server keeps them idle, and a request that a connection failure
// interrupts is retried once when that is safe. Without -url it starts a
// server of its own on 127.0.0.1 whose keep-alive ends idle connections
// after -server-idle.
//
//	go run ./http                                     # against its own server
//	go run ./http -url http://127.0.0.1:8080/ -server-idle 75s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"time"

	"github.com/rstpool/rstpool"
)

// options are the command's flags.
type options struct {
	url        string        // empty: a server of its own
	serverIdle time.Duration // the server's keep-alive idle timeout, declared as a hop
	pause      time.Duration // the quiet spell before the last request
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "URL to GET (empty: start a server on 127.0.0.1 and GET from it)")
	flag.DurationVar(&o.serverIdle, "server-idle", time.Second, "how long the server keeps an idle connection (its keep-alive timeout)")
	flag.DurationVar(&o.pause, "pause", time.Second, "quiet spell before the last request")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, o options) error {
	if o.url == "" {
		stop, url, err := serve(o.serverIdle)
		if err != nil {
			return err
		}
		defer stop()
		o.url = url
	}
	// Declare the hops between the client and the server; here only the
	// server's keep-alive. The Transport keeps idle connections for ¾ of it.
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "server keep-alive", IdleTimeout: o.serverIdle}}}
	tr := &rstpool.Transport{
		Dialer:   d,
		Observer: rstpool.LogEvents(slog.New(slog.NewTextHandler(os.Stderr, nil))), // retries, failures surfaced
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	for i := range 3 {
		if i == 2 {
			idle, _, _ := d.Limits()
			fmt.Fprintf(w, "pause %v (the client's idle limit is %v)\n", o.pause, idle)
			time.Sleep(o.pause)
		}
		if err := get(ctx, w, client, o.url); err != nil {
			return err
		}
	}
	s := tr.Stats()
	fmt.Fprintf(w, "requests %d, retries %d, errors %d\n", s.Requests, s.Retried, s.Surfaced)
	return nil
}

// get sends one GET and prints the answer and whether its connection was
// reused.
func get(ctx context.Context, w io.Writer, client *http.Client, url string) error {
	var conn string
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		conn = "new connection"
		if info.Reused {
			conn = fmt.Sprintf("reused, idle %v", info.IdleTime.Round(time.Millisecond))
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		// A *rstpool.ConnError inside says what failed and its likely cause.
		return fmt.Errorf("GET %s: %w (class %s)", url, err, rstpool.Classify(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	fmt.Fprintf(w, "GET %s: %s %q (%s)\n", url, resp.Status, body, conn)
	return nil
}

// serve starts an HTTP server on a loopback port whose keep-alive closes
// connections idle for idle, and returns its URL and a function that stops
// it.
func serve(idle time.Duration) (stop func(), url string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "hello")
		}),
		IdleTimeout:       idle,
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, "http://" + ln.Addr().String() + "/", nil
}
