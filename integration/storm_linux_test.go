package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// The restart storm: stormClients Transports with stormConns idle
// connections each to one server, which restarts (listener closed and
// every connection with it, stormDown later a new listener on the same
// port). Every client sends stormConns requests at once (a fan-out) every
// stormPeriod, at a phase of its own, from the restart until stormAfter
// past the reopen.
const (
	stormClients = 100
	stormConns   = 10
	stormDown    = 200 * time.Millisecond
	stormPeriod  = 200 * time.Millisecond
	stormAfter   = time.Second
)

// A stormRun is what one restart did.
type stormRun struct {
	client               string
	together             bool // the clients' requests go at the same moments
	backlog              int
	warm                 int           // connections open before the restart
	reconnects           int           // connections accepted after the reopen
	spread               time.Duration // first to 99th percentile of them
	spreadAll            time.Duration // first to last
	overflows, drops     int64         // the namespace's listen queue counters, during the run
	requests, errs       int64
	retries, denied      int64 // rstpool's retries (dial backoff steps, requests) taken and denied
	refusedWhileDown     int64 // connect attempts during the downtime
	firstAfter, p50, p99 time.Duration
}

// TestRestartStorm measures the reconnect spread and the listen queue
// overflows when a server with 1,000 idle connections restarts, stock
// net/http vs rstpool's Transport. It takes about 20 s of two busy cores,
// so it runs only with RSTPOOL_STORM=1 (see BENCHMARKS.md); run it
// without -race.
func TestRestartStorm(t *testing.T) {
	if os.Getenv("RSTPOOL_STORM") != "1" {
		t.Skip("the restart storm takes ~20 s of two busy cores: run it with RSTPOOL_STORM=1 (without -race), see BENCHMARKS.md")
	}
	var runs []stormRun
	for _, together := range []bool{false, true} {
		for _, backlog := range []int{0, 128} {
			for _, ours := range []bool{false, true} {
				runs = append(runs, restartStorm(t, ours, backlog, together))
			}
		}
	}
	t.Logf("restart storm: %d clients × %d idle connections, down %v, a request per connection every %v:\n%s",
		stormClients, stormConns, stormDown, stormPeriod, stormTable(runs))
	for i, r := range runs {
		require.Equal(t, stormClients*stormConns, r.warm, "%s: idle connections before the restart", r.client)
		require.GreaterOrEqual(t, r.reconnects, stormClients*stormConns*9/10, "%s: the clients reconnected", r.client)
		if i%2 == 1 { // rstpool's run, beside the stock one before it
			stock := runs[i-1]
			require.LessOrEqual(t, r.errs, stock.errs, "rstpool surfaced more errors than stock (backlog %d, together %v)", r.backlog, r.together)
			require.LessOrEqual(t, r.overflows, stock.overflows, "rstpool overflowed the listen queue more than stock (backlog %d, together %v)", r.backlog, r.together)
		}
	}
}

// restartStorm runs one storm with the stock or the rstpool clients.
//
// The clients' phases are random, or with together the same for all (50 ms
// after the restart): clients whose requests an upstream event triggers at
// once.
func restartStorm(t *testing.T, ours bool, backlog int, together bool) stormRun {
	srv, err := newStormServer(backlog)
	require.NoError(t, err)
	defer srv.close()
	var attempts stormAttempts
	var ev retryEvents
	clients := stormTransports(ours, &attempts, ev.observe)
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	r := stormRun{client: "net/http", backlog: backlog, together: together}
	if ours {
		r.client = "rstpool.Transport"
	}
	r.warm = warmStorm(t, clients, srv)
	o0, d0, err := listenOverflows()
	require.NoError(t, err)
	start := time.Now()
	stop := start.Add(stormDown + stormAfter)
	var wg sync.WaitGroup
	var requests, errs atomic.Int64
	for _, c := range clients {
		first := start.Add(rand.N(stormPeriod))
		if together {
			first = start.Add(50 * time.Millisecond)
		}
		wg.Go(func() { stormClient(c, srv.addr, first, stop, &requests, &errs) })
	}
	reopened, err := srv.restart(stormDown)
	require.NoError(t, err)
	wg.Wait()
	o1, d1, err := listenOverflows()
	require.NoError(t, err)
	r.overflows, r.drops = o1-o0, d1-d0
	r.requests, r.errs = requests.Load(), errs.Load()
	r.retries, r.denied = ev.retries.Load(), ev.denied.Load()
	r.refusedWhileDown = attempts.between(start, reopened)
	acc := srv.acceptedSince(reopened)
	r.reconnects = len(acc)
	if len(acc) > 0 {
		r.spread = acc[len(acc)*99/100-boolInt(len(acc)%100 == 0)].Sub(acc[0])
		r.spreadAll = acc[len(acc)-1].Sub(acc[0])
		r.firstAfter = acc[0].Sub(reopened)
		r.p50 = acc[len(acc)/2].Sub(reopened)
		r.p99 = acc[0].Sub(reopened) + r.spread
	}
	return r
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stormTransports are the clients: each keeps up to stormConns idle
// connections.
func stormTransports(ours bool, attempts *stormAttempts, o rstpool.Observer) []interface {
	http.RoundTripper
	CloseIdleConnections()
} {
	var out []interface {
		http.RoundTripper
		CloseIdleConnections()
	}
	for range stormClients {
		nd := attempts.netDialer()
		base := &http.Transport{MaxIdleConnsPerHost: stormConns, DialContext: nd.DialContext}
		if ours {
			out = append(out, &rstpool.Transport{Base: base, Dialer: &rstpool.Dialer{NetDialer: nd, Observer: o}})
		} else {
			out = append(out, base)
		}
	}
	return out
}

// warmStorm opens stormConns connections on every client (concurrent
// requests the server holds 200 ms) and returns how many the server has.
func warmStorm(t *testing.T, clients []interface {
	http.RoundTripper
	CloseIdleConnections()
}, srv *stormServer) int {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i, c := range clients {
		for range stormConns {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 3 * time.Millisecond) // not one burst
				if stormGet(c, srv.addr, "?warm") != nil {
					failed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "warming up")
	return len(srv.acceptedSince(time.Time{}))
}

// stormClient sends stormConns requests at once (a fan-out the server
// holds a moment, so each needs a connection of its own) every
// stormPeriod, from first until stop.
func stormClient(rt http.RoundTripper, addr string, first, stop time.Time, requests, errs *atomic.Int64) {
	next := first
	for next.Before(stop) {
		time.Sleep(time.Until(next))
		var wg sync.WaitGroup
		for range stormConns {
			wg.Go(func() {
				requests.Add(1)
				if err := stormGet(rt, addr, "?hold"); err != nil {
					errs.Add(1)
				}
			})
		}
		wg.Wait()
		next = next.Add(stormPeriod)
	}
}

func stormGet(rt http.RoundTripper, addr, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// stormAttempts records when each connect attempt of the clients began
// (the SYN).
type stormAttempts struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *stormAttempts) netDialer() *net.Dialer {
	return notingNetDialer(func() {
		now := time.Now()
		a.mu.Lock()
		a.times = append(a.times, now)
		a.mu.Unlock()
	})
}

// between counts the attempts that began in [from, to).
func (a *stormAttempts) between(from, to time.Time) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := int64(0)
	for _, t := range a.times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

func stormTable(runs []stormRun) string {
	var b strings.Builder
	b.WriteString("| phases | backlog | client | idle conns before | reconnects | spread first→p99 (first→last) | after the reopen: first / p50 / p99 | ListenOverflows / ListenDrops | connects refused while down | requests failed / sent | retries taken / denied |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		backlog := "somaxconn (4096)"
		if r.backlog > 0 {
			backlog = fmt.Sprint(r.backlog)
		}
		phases := "random"
		if r.together {
			phases = "together"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s (%s) | %s / %s / %s | %d / %d | %d | %d / %d | %d / %d |\n", phases, backlog, r.client, r.warm, r.reconnects,
			ms(r.spread), ms(r.spreadAll), ms(r.firstAfter), ms(r.p50), ms(r.p99), r.overflows, r.drops, r.refusedWhileDown, r.errs, r.requests, r.retries, r.denied)
	}
	return b.String()
}
