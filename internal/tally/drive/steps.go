package drive

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
)

// expect fails t unless err is of class want (ClassNone: no error).
func expect(t testing.TB, step string, err error, want rstpool.Class) {
	t.Helper()
	if got := rstpool.Classify(err); got != want {
		t.Fatalf("%s: got %v (class %v), want class %v", step, err, got, want)
	}
}

func request(ctx context.Context, tr *rstpool.Transport, method, url string) error {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("order")
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && string(b) != "ok" {
		err = fmt.Errorf("answer %q", b)
	}
	return err
}

func (r *Run) driveTransports(ctx context.Context, t testing.TB) {
	t.Helper()
	at := "http://" + r.HTTPAddr
	expect(t, "first GET", request(ctx, r.Transport, http.MethodGet, at+"/ok"), rstpool.ClassNone)
	// The server reaps connections idle ReapAfter; the client finds it out
	// twice, with no blip around: each GET succeeds on a new connection,
	// and the Transport learns an idle limit from the two deaths that agree.
	for range 2 {
		time.Sleep(ReapAfter + 10*time.Millisecond)
		expect(t, "GET on a connection the server reaped", request(ctx, r.Transport, http.MethodGet, at+"/reap"), rstpool.ClassNone)
	}
	time.Sleep(600 * time.Millisecond) // clear of any blip: the second death counts at the next request
	expect(t, "GET reset on every attempt (retried once: its Dialer retries no refused connect, so no reset on arrival either)", request(ctx, r.Transport, http.MethodGet, at+"/reset"), rstpool.ClassReset)
	expect(t, "POST reset (never retried)", request(ctx, r.Transport, http.MethodPost, at+"/reset"), rstpool.ClassReset)
	expect(t, "GET a closed port", request(ctx, r.Transport, http.MethodGet, "http://"+r.ClosedAddr+"/"), rstpool.ClassRefused)
	// A new connection reset before its first answer is a connect reset,
	// retried free of any budget: the denial needs a reused one, and a PUT
	// (net/http sends a GET again on its own after a reused connection
	// failed).
	expect(t, "PUT on a new connection", request(ctx, r.Denying, http.MethodPut, at+"/reset-reused"), rstpool.ClassNone)
	expect(t, "PUT reset on a reused connection, retry denied", request(ctx, r.Denying, http.MethodPut, at+"/reset-reused"), rstpool.ClassReset)
}

// line sends cmd and expects "ok".
func line(cmd string) func(net.Conn) error {
	return func(c net.Conn) error {
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if _, err := io.WriteString(c, cmd+"\n"); err != nil {
			return err
		}
		answer, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && answer != "ok\n" {
			err = fmt.Errorf("answer %q", answer)
		}
		return err
	}
}

func (r *Run) drivePools(ctx context.Context, t testing.TB) {
	t.Helper()
	p := r.Pool
	expect(t, "first Do", p.Do(ctx, true, line("ok")), rstpool.ClassNone)
	expect(t, "Do, then the server resets the idle connection", p.Do(ctx, true, line("close")), rstpool.ClassNone)
	time.Sleep(60 * time.Millisecond)
	expect(t, "Do on a connection reset while idle (caught dead)", p.Do(ctx, true, line("ok")), rstpool.ClassNone)
	expect(t, "idempotent Do reset when reused (retried)", p.Do(ctx, true, line("reset-reused")), rstpool.ClassNone)
	expect(t, "Do reset when reused (surfaced)", p.Do(ctx, false, line("reset-reused")), rstpool.ClassReset)
	expect(t, "Do on a new connection", p.Do(ctx, true, line("ok")), rstpool.ClassNone)
	time.Sleep(PoolIdle + 50*time.Millisecond)
	expect(t, "Do after the idle limit (retired)", p.Do(ctx, true, line("ok")), rstpool.ClassNone)

	expect(t, "first Do, no budget", r.Stingy.Do(ctx, true, line("ok")), rstpool.ClassNone)
	expect(t, "idempotent Do reset when reused, no budget", r.Stingy.Do(ctx, true, line("reset-reused")), rstpool.ClassReset)
}
