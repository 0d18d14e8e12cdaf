package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// Offered-load runs: loadRequests requests from loadWorkers goroutines,
// each pausing loadPace between its requests, the whole run bounded by
// loadLimit.
const (
	loadRequests = 1000
	loadWorkers  = 16
	loadPace     = 5 * time.Millisecond
	loadLimit    = 60 * time.Second
)

// A loadRun is what one client offered and what reached the network.
type loadRun struct {
	scenario, client string
	requests         int64 // calls made
	attempts         int64 // connects, or requests the server saw
	errs             int64 // calls that failed
	retries, denied  int64 // rstpool's retries taken, and denied by the budget
	ours             bool
}

func (r loadRun) ratio() float64 { return float64(r.attempts) / float64(r.requests) }

// offer makes loadRequests calls and counts them and their errors.
func offer(call func(ctx context.Context) error) (requests, errs int64) {
	var next atomic.Int64
	var failed atomic.Int64
	stop := time.Now().Add(loadLimit)
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for next.Add(1) <= loadRequests && time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if call(ctx) != nil {
					failed.Add(1)
				}
				cancel()
				time.Sleep(loadPace)
			}
		})
	}
	wg.Wait()
	return min(next.Load()-loadWorkers, loadRequests), failed.Load()
}

// get is a GET through rt.
func get(rt http.RoundTripper, url string) func(ctx context.Context) error {
	client := &http.Client{Transport: rt}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err = io.Copy(io.Discard, resp.Body); err == nil && resp.StatusCode >= 500 {
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		return err
	}
}

// httpLoad runs GETs to addr through the stock transport and rstpool's,
// each dialing through a net.Dialer that counts its connects; attempts
// counts the connects, or what the server counted when served is set.
func httpLoad(t *testing.T, scenario, addr string, served *atomic.Int64, budget time.Duration) []loadRun {
	var runs []loadRun
	for _, ours := range []bool{false, true} {
		var connects atomic.Int64
		nd := countingNetDialer(&connects)
		stock := http.DefaultTransport.(*http.Transport).Clone()
		stock.DialContext = nd.DialContext
		var rt http.RoundTripper = stock
		var ev retryEvents
		tr := &rstpool.Transport{Dialer: &rstpool.Dialer{NetDialer: nd, RefusedRetry: budget, Observer: ev.observe}}
		if ours {
			rt = tr
		}
		before := int64(0)
		if served != nil {
			before = served.Load()
		}
		r := loadRun{scenario: scenario, client: "net/http", ours: ours}
		r.requests, r.errs = offer(get(rt, "http://"+addr+"/"))
		r.attempts = connects.Load()
		if served != nil {
			r.attempts = served.Load() - before
		}
		if ours {
			r.client = "rstpool.Transport"
			r.retries, r.denied = ev.retries.Load(), ev.denied.Load()
		}
		runs = append(runs, r)
	}
	return runs
}

// poolLoad runs Do calls (idempotent: a line written, a byte read) on a
// Pool to addr; attempts counts the connects, or what the server counted
// when served is set.
func poolLoad(t *testing.T, scenario, addr string, served *atomic.Int64, budget time.Duration) loadRun {
	var connects atomic.Int64
	var ev retryEvents
	p, err := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, MaxSize: loadWorkers,
		Dialer: &rstpool.Dialer{NetDialer: countingNetDialer(&connects), RefusedRetry: budget, Observer: ev.observe}})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close(context.Background()) })
	r := loadRun{scenario: scenario, client: "rstpool.Pool Do", ours: true}
	r.requests, r.errs = offer(func(ctx context.Context) error {
		return p.Do(ctx, true, func(c net.Conn) error {
			if _, err := io.WriteString(c, "PING\r\n"); err != nil {
				return err
			}
			_, err := c.Read(make([]byte, 1))
			return err
		})
	})
	r.attempts = connects.Load()
	if served != nil {
		r.attempts = served.Load()
	}
	r.retries, r.denied = ev.retries.Load(), ev.denied.Load()
	return r
}

// retryEvents counts the retries a Dialer and its consumers took (the
// Dialer's of refused connects, the Transport's and Pool's of work) and
// those the retry budgets denied.
type retryEvents struct{ retries, denied atomic.Int64 }

func (e *retryEvents) observe(ev rstpool.Event) {
	switch ev.Kind {
	case rstpool.EventRetry, rstpool.EventDialRetry:
		e.retries.Add(1)
	case rstpool.EventRetryDenied:
		e.denied.Add(1)
	}
}

// TestOfferedLoad measures, for a bounded run, the attempts that reach the
// network or the server per request a caller makes, during a hard outage
// (a closed port: connect attempts), a 503 storm (requests the server
// answered) and a server that resets every connection (requests it read),
// stock and through rstpool. Goal: attempts / requests ≤ 1.1; against the
// resetting server, where every failure may be retried, within the retry
// budget's floor: ≤ 1.1 + DefaultRetryBurst / requests.
func TestOfferedLoad(t *testing.T) {
	budget := outageBudget(t)
	var s503, sReset, sPoolReset atomic.Int64
	var runs []loadRun
	runs = append(runs, httpLoad(t, "hard outage (closed port): connects", closedAddr(t), nil, budget)...)
	runs = append(runs, poolLoad(t, "hard outage (closed port): connects", closedAddr(t), nil, budget))
	runs = append(runs, httpLoad(t, "503 to every request: requests served", statusServer(t, http.StatusServiceUnavailable, &s503), &s503, budget)...)
	runs = append(runs, httpLoad(t, "reset after every request line: requests read", resetServer(t, &sReset), &sReset, budget)...)
	runs = append(runs, poolLoad(t, "reset after every request line: requests read", resetServer(t, &sPoolReset), &sPoolReset, budget))
	t.Logf("offered vs delivered load, %d requests from %d goroutines, RefusedRetry %v:\n%s", loadRequests, loadWorkers, budget, loadTable(runs))
	for _, r := range runs {
		require.Equal(t, int64(loadRequests), r.requests, "%s, %s: the run was cut short", r.scenario, r.client)
		require.Equal(t, r.requests, r.errs, "%s, %s: every request fails", r.scenario, r.client)
		bound := 1.1
		if strings.HasPrefix(r.scenario, "reset") {
			bound += float64(rstpool.DefaultRetryBurst) / float64(r.requests)
		}
		require.LessOrEqual(t, r.ratio(), bound, "%s, %s: attempts per request", r.scenario, r.client)
	}
}

func loadTable(runs []loadRun) string {
	var b strings.Builder
	b.WriteString("| scenario: attempts counted | client | requests | attempts | attempts / requests | retries taken / denied by the budget |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range runs {
		retries := "—"
		if r.ours {
			retries = fmt.Sprintf("%d / %d", r.retries, r.denied)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.3f | %s |\n", r.scenario, r.client, r.requests, r.attempts, r.ratio(), retries)
	}
	return b.String()
}
