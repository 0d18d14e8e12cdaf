package demo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool"
)

// requestTimeout bounds one request, so that a run always ends.
const requestTimeout = 5 * time.Second

// outcome is what happened to one request of a leg.
type outcome struct {
	sent     bool
	class    rstpool.Class // ClassNone: success
	attempts int32         // attempts the demo saw: more than one means retried
	latency  time.Duration
}

// A sender sends one request of the schedule and counts in *attempts the
// attempts it saw (more than one: it was retried).
type sender func(r Request, attempts *int32) error

// A leg sends a schedule through one client and records the outcome of
// every request, indexed by request id.
type leg struct {
	send     sender
	conc     int
	outcomes []outcome

	done, failed atomic.Int64 // for progress
	elapsed      time.Duration
}

func newLeg(send sender, conc, requests int) *leg {
	return &leg{
		send:     send,
		conc:     max(conc, 1),
		outcomes: make([]outcome, requests),
	}
}

type job struct {
	r  Request
	wg *sync.WaitGroup
}

// run sends the schedule burst by burst, sleeping each gap, until it ends or
// ctx is done. Requests in flight when ctx ends are finished, not canceled.
func (l *leg) run(ctx context.Context, sched []Burst) {
	jobs := make(chan job)
	var workers sync.WaitGroup
	for range l.conc {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				l.do(j.r)
				j.wg.Done()
			}
		}()
	}
	for _, b := range sched {
		if !sleep(ctx, b.Gap) || !l.burst(ctx, jobs, b.Requests) {
			break
		}
	}
	close(jobs)
	workers.Wait()
}

// burst hands the requests to the workers and waits for them; false when ctx
// ended first.
func (l *leg) burst(ctx context.Context, jobs chan<- job, rs []Request) bool {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, r := range rs {
		wg.Add(1)
		select {
		case jobs <- job{r, &wg}:
		case <-ctx.Done():
			wg.Done()
			return false
		}
	}
	return true
}

// do sends one request, reads the whole response and records the outcome.
func (l *leg) do(r Request) {
	o := &l.outcomes[r.ID]
	o.sent = true
	start := time.Now()
	err := l.send(r, &o.attempts)
	o.latency = time.Since(start)
	o.class = rstpool.Classify(err)
	l.done.Add(1)
	if err != nil {
		l.failed.Add(1)
	}
}

// httpSender sends requests through rt to the server at base, reading
// every response in full; each connection a request got is an attempt.
func httpSender(rt http.RoundTripper, base string) sender {
	client := &http.Client{Transport: rt, Timeout: requestTimeout}
	return func(r Request, attempts *int32) error {
		trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { atomic.AddInt32(attempts, 1) }}
		return sendHTTP(httptrace.WithClientTrace(context.Background(), trace), client, base, r)
	}
}

func sendHTTP(ctx context.Context, client *http.Client, base string, r Request) error {
	req, err := newHTTPRequest(ctx, base, r)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// newHTTPRequest builds the HTTP request for r. The body is a bytes.Reader,
// so the request has GetBody and can be replayed.
func newHTTPRequest(ctx context.Context, base string, r Request) (*http.Request, error) {
	id := strconv.Itoa(r.ID)
	var body io.Reader
	if r.Body > 0 {
		body = bytes.NewReader(bytes.Repeat([]byte{'x'}, r.Body))
	}
	path := "/items/" + id
	if r.Kind == KindPostKeyed || r.Kind == KindPost {
		path = "/orders"
	}
	req, err := http.NewRequestWithContext(ctx, r.Kind.Method(), base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set(headerRequestID, id)
	if r.Kind == KindPostKeyed {
		req.Header.Set(headerIdempotencyKey, "order-"+id)
	}
	return req, nil
}

// sleep waits d or until ctx is done; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
