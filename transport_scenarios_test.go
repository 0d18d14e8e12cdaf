package rstpool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

var tsLong = flag.Bool("rstpool.long", false, "run the HTTP scenarios at 8 goroutines × 250 requests per client and print the table")

// A tsCase is one scenario: a real net/http server, optionally behind the
// fault proxy, and a workload run through stock net/http and through
// rstpool.Transport side by side, each against its own server and proxy.
type tsCase struct {
	name    string
	methods []string
	gap     func(r *rand.Rand) time.Duration // time between rounds
	body    int                              // bytes in a POST or PUT body
	proxy   *faultproxy.Config               // nil: no proxy
	server  func(*http.Server)
	tls     bool // HTTP/2 over TLS
	h2c     bool // HTTP/2 without TLS
	during  func(p *faultproxy.Proxy, done <-chan struct{})
	rstpool func(tr *Transport) // settings beyond the test defaults
	timeout time.Duration       // http.Client.Timeout
}

// tsSide is what one client saw in a scenario.
type tsSide struct {
	sent, errs map[string]int // by method
	dupNonIdem int            // POST requests the server ran more than once
	arrivals   int            // requests the server ran
	unwrapped  int            // errors that are not a *ConnError
	sample     error
	all        []string // every error, "METHOD: error"
	stats      TransportStats
}

func (s *tsSide) errTotal(methods ...string) int {
	n := 0
	for _, m := range methods {
		n += s.errs[m]
	}
	return n
}

// tsServer counts the arrivals of each request id.
type tsServer struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *tsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	s.seen[r.Header.Get("X-Request-Id")]++
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (c *tsCase) startServer(t *testing.T) (*tsServer, *httptest.Server) {
	h := &tsServer{seen: make(map[string]int)}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	if c.server != nil {
		c.server(srv.Config)
	}
	switch {
	case c.tls:
		srv.EnableHTTP2 = true
		srv.StartTLS()
	case c.h2c:
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
	default:
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return h, srv
}

// base is the stock transport for the case, and the Base of rstpool's.
func (c *tsCase) base(srv *httptest.Server) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if c.tls {
		tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		tr.ForceAttemptHTTP2 = true
	}
	if c.h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// run runs the workload through one client; useRstpool picks which.
func (c *tsCase) run(t *testing.T, workers, per int, useRstpool bool) *tsSide {
	h, srv := c.startServer(t)
	addr := srv.Listener.Addr().String()
	if c.proxy != nil {
		cfg := *c.proxy
		cfg.Upstream = addr
		p, err := faultproxy.Start(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		addr = p.Addr()
		if c.during != nil {
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); c.during(p, done) }()
			defer func() { close(done); wg.Wait() }()
		}
	}
	var rt http.RoundTripper = c.base(srv)
	var tr *Transport
	if useRstpool {
		tr = &Transport{Base: c.base(srv), Dialer: &Dialer{}, LearnFloor: 50 * time.Millisecond}
		if c.rstpool != nil {
			c.rstpool(tr)
		}
		rt = tr
	}
	defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	scheme := "http"
	if c.tls {
		scheme = "https"
	}
	side := c.workload(&http.Client{Transport: rt, Timeout: c.timeout}, scheme+"://"+addr, workers, per)
	c.count(side, h)
	if tr != nil {
		side.stats = tr.Stats()
	}
	return side
}

// workload runs rounds: in each, every worker sends one request at the
// same moment (± 1 ms), after the round's gap, so that every pooled
// connection has sat idle for about that gap when it is reused.
func (c *tsCase) workload(client *http.Client, url string, workers, per int) *tsSide {
	side := &tsSide{sent: map[string]int{}, errs: map[string]int{}}
	starts := make([]time.Time, per)
	rng := rand.New(rand.NewPCG(42, 0))
	at := time.Now()
	for i := range starts {
		at = at.Add(c.gap(rng))
		starts[i] = at
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jitter := rand.New(rand.NewPCG(7, uint64(g)))
			for i := range per {
				time.Sleep(time.Until(starts[i].Add(time.Duration(jitter.Int64N(int64(time.Millisecond))))))
				m := c.methods[(g+i)%len(c.methods)]
				err := c.do(client, url, m, fmt.Sprintf("%s-%d-%d", m, g, i))
				mu.Lock()
				side.note(m, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return side
}

func (s *tsSide) note(method string, err error) {
	s.sent[method]++
	if err == nil {
		return
	}
	s.errs[method]++
	s.all = append(s.all, method+": "+err.Error())
	var ce *ConnError
	if !errors.As(err, &ce) {
		s.unwrapped++
	}
	if s.sample == nil {
		s.sample = err
	}
}

func (c *tsCase) do(client *http.Client, url, method, id string) error {
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(strings.Repeat("x", c.body))
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Request-Id", id)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func (c *tsCase) count(side *tsSide, h *tsServer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.seen {
		side.arrivals += n
		if n > 1 && strings.HasPrefix(id, http.MethodPost+"-") {
			side.dupNonIdem++
		}
	}
}

// compare runs the case through both clients at once and returns their
// results, stock first.
func (c *tsCase) compare(t *testing.T, workers, per int) (stock, ours *tsSide) {
	if *tsLong {
		workers, per = 8, 250
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); stock = c.run(t, workers, per, false) }()
	ours = c.run(t, workers, per, true)
	wg.Wait()
	tsReport(t, c.name, stock, ours)
	return stock, ours
}

var tsReportMu sync.Mutex

func tsReport(t *testing.T, name string, stock, ours *tsSide) {
	tsReportMu.Lock()
	defer tsReportMu.Unlock()
	if os.Getenv("RSTPOOL_SCENARIO_ERRORS") != "" {
		t.Logf("%s: rstpool errors:\n%s", name, strings.Join(ours.all, "\n"))
	}
	for _, side := range []struct {
		who string
		s   *tsSide
	}{{"stock", stock}, {"rstpool", ours}} {
		var cells []string
		for m, n := range side.s.sent {
			cells = append(cells, fmt.Sprintf("%s %d/%d", m, side.s.errs[m], n))
		}
		sort.Strings(cells)
		t.Logf("| %s | %s | %s | dup POST %d | arrivals %d | retries %d | learned %v | sample: %v",
			name, side.who, strings.Join(cells, ", "), side.s.dupNonIdem, side.s.arrivals,
			side.s.stats.Retried, side.s.stats.LearnedIdle, side.s.sample)
	}
}

// requireSafe asserts what rstpool promises: no idempotent request failed,
// no POST ran twice, and every error is a *ConnError.
func requireSafe(t *testing.T, ours *tsSide, idempotent ...string) {
	t.Helper()
	require.Zero(t, ours.errTotal(idempotent...), "idempotent requests failed through rstpool:\n%s", strings.Join(ours.all, "\n"))
	require.Zero(t, ours.dupNonIdem, "a POST ran twice through rstpool")
	require.Zero(t, ours.unwrapped, "an error is not a *ConnError: %v", ours.sample)
}

// gapAround pauses d ± spread, uniformly.
func gapAround(d, spread time.Duration) func(*rand.Rand) time.Duration {
	return func(r *rand.Rand) time.Duration { return d - spread + time.Duration(r.Int64N(int64(2*spread)+1)) }
}

var tsAllMethods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete}

// Timescales. A busy 2-core machine runs a woken goroutine tens of
// milliseconds late, and a request through the race detector's server and
// proxy may take longer than that: the scenarios keep every margin the
// product relies on (an idle limit below a hop's timeout, a quarter of it
// for a learned limit) well above such delays. A scenario light on the
// CPU runs in parallel with the others; a heavy one (Blip, UnreadBody)
// runs alone, so that no scenario's timing is another's load.
const (
	tsMiddleboxIdle = 200 * time.Millisecond // a forgetful middlebox's idle timer
	tsRounds        = 20                     // rounds of a 200 ms scenario: 4 s
)

// The server's keep-alive closes connections idle 100 ms; the client
// comes back after 98-102 ms, so its request crosses the server's FIN.
// rstpool learns the timeout from the connections that died, unless the
// evidence contradicts them: on a busy machine the server's own idle
// timer may run late, and a connection that answers after a gap clearly
// longer than one that died refutes the deaths (learn only from
// consistent evidence). Then not learning is right, and the test says so.
func TestScenarioServerIdleRace(t *testing.T) {
	t.Parallel()
	var tr *Transport
	c := &tsCase{
		name: "server IdleTimeout race", methods: tsAllMethods, body: 64,
		gap:     gapAround(100*time.Millisecond, 2*time.Millisecond),
		server:  func(s *http.Server) { s.IdleTimeout = 100 * time.Millisecond },
		rstpool: func(t *Transport) { tr = t },
		timeout: 5 * time.Second,
	}
	stock, ours := c.compare(t, 4, 40)
	require.NotZero(t, stock.errTotal(http.MethodPut, http.MethodPost), "stock net/http did not show the race")
	requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
	requireNeverWorse(t, stock, ours)
	if len(ours.stats.LearnedIdle) == 0 {
		okGap := tr.learnedOKGap()
		require.GreaterOrEqual(t, okGap, 100*time.Millisecond*9/8,
			"rstpool did not learn the server's idle timeout, though no connection answered after a gap clearly longer than 100 ms")
		t.Logf("not learned, rightly: a connection answered after %v idle (the server's 100 ms timer ran late)", okGap)
	}
}

// learnedOKGap is the longest idle gap after which a reused connection of
// tr answered, at any destination.
func (tr *Transport) learnedOKGap() time.Duration {
	tr.learn.mu.Lock()
	defer tr.learn.mu.Unlock()
	var gap time.Duration
	for _, e := range tr.learn.ev {
		gap = max(gap, e.okGap)
	}
	return gap
}

// A middlebox forgets flows idle over 200 ms and answers their next bytes
// with an RST.
func TestScenarioMiddleboxReset(t *testing.T) {
	t.Parallel()
	c := &tsCase{
		name: "middlebox RST reap", methods: tsAllMethods, body: 64,
		gap:     gapAround(tsMiddleboxIdle, tsMiddleboxIdle*3/10),
		proxy:   &faultproxy.Config{IdleTimeout: tsMiddleboxIdle, IdleAction: faultproxy.ActionReset, IdleWaitsForClient: true},
		timeout: 5 * time.Second,
	}
	stock, ours := c.compare(t, 4, tsRounds)
	require.NotZero(t, stock.errTotal(http.MethodPut, http.MethodPost), "stock net/http did not show the reset")
	requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
	requireNeverWorse(t, stock, ours)
	require.NotEmpty(t, ours.stats.LearnedIdle)
}

// The server restarts: open flows are reset and connects are refused for
// 200 ms.
func TestScenarioRestart(t *testing.T) {
	t.Parallel()
	c := &tsCase{
		name: "restart (refused 200 ms)", methods: tsAllMethods, body: 64,
		gap:   gapAround(25*time.Millisecond, 5*time.Millisecond),
		proxy: &faultproxy.Config{},
		during: func(p *faultproxy.Proxy, done <-chan struct{}) {
			select {
			case <-time.After(500 * time.Millisecond):
				<-p.Restart(200 * time.Millisecond)
			case <-done:
			}
		},
		timeout: 5 * time.Second,
	}
	stock, ours := c.compare(t, 4, 60)
	require.NotZero(t, stock.errTotal(tsAllMethods...), "stock net/http did not see the restart")
	requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
	requireNeverWorse(t, stock, ours)
}

// The server answers 413 at once and closes while the client still sends
// a 1 MiB body: the kernel resets the connection (cause 3). Heavy on the
// CPU (100 MiB through the race detector per client): it runs alone.
func TestScenarioUnreadBody(t *testing.T) {
	c := &tsCase{
		name: "close with unread data (1 MiB PUT)", methods: []string{http.MethodPut}, body: 1 << 20,
		gap: gapAround(10*time.Millisecond, 2*time.Millisecond),
		proxy: &faultproxy.Config{
			EarlyResponse: []byte("HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
		},
		timeout: 10 * time.Second,
	}
	stock, ours := c.compare(t, 4, 25)
	// Stock net/http often reads the 413 before its write fails and then
	// returns it: its share of resets (4 % at 2,000 requests) varies with
	// load, so it is logged, not asserted. Without Expect: 100-continue,
	// rstpool would fail at the same rate and requireSafe would see it.
	t.Logf("stock net/http was reset on %d of 100 PUTs", stock.errTotal(http.MethodPut))
	requireSafe(t, ours, http.MethodPut)
	requireNeverWorse(t, stock, ours)
}

// HTTP/2 over TLS and h2c through a middlebox that resets flows idle over
// 200 ms.
func TestScenarioHTTP2MiddleboxReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tls, h2c bool
	}{{"h2 TLS", true, false}, {"h2c", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &tsCase{
				name: tc.name + " middlebox RST reap", methods: tsAllMethods, body: 64, tls: tc.tls, h2c: tc.h2c,
				gap:     gapAround(tsMiddleboxIdle, tsMiddleboxIdle*3/10),
				proxy:   &faultproxy.Config{IdleTimeout: tsMiddleboxIdle, IdleAction: faultproxy.ActionReset, IdleWaitsForClient: true},
				timeout: 5 * time.Second,
			}
			stock, ours := c.compare(t, 4, tsRounds)
			require.NotZero(t, stock.errTotal(tsAllMethods...), "stock net/http did not show the reset")
			requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
			requireNeverWorse(t, stock, ours)
		})
	}
}

// An L7 proxy silently drops flows idle over 400 ms: its kernel acknowledges
// the request, so only an idle limit below the hop's avoids the hang. The
// chain declares the hop. A dropped request hangs until Client.Timeout,
// which leaves a loaded machine's slowest answers (a second and more
// through the race detector) room.
func TestScenarioSilentDropL7(t *testing.T) {
	t.Parallel()
	c := &tsCase{
		name: "silent drop (L7, chain declared)", methods: tsAllMethods, body: 64,
		gap:   gapAround(400*time.Millisecond, 120*time.Millisecond),
		proxy: &faultproxy.Config{IdleTimeout: 400 * time.Millisecond, IdleAction: faultproxy.ActionDrop, IdleWaitsForClient: true},
		rstpool: func(tr *Transport) {
			tr.Dialer.Chain = Chain{{Name: "L7 proxy", IdleTimeout: 400 * time.Millisecond}}
		},
		timeout: 2 * time.Second,
	}
	stock, ours := c.compare(t, 4, 20)
	require.NotZero(t, stock.errTotal(http.MethodGet), "stock net/http did not hang on a dropped flow")
	requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
	requireNeverWorse(t, stock, ours)
	require.Zero(t, ours.errTotal(http.MethodPost))
}

// A blip: every flow is reset (or closed) for 100 ms every 1-1.5 s, a
// proxy reload or a flapping link, under 600 requests per method.
// Idempotent requests survive through rstpool, and no cell is worse than
// stock. Heavy on the CPU (8 workers every 12 ms per client): each runs
// alone.
func TestScenarioBlip(t *testing.T) {
	for _, action := range []faultproxy.Action{faultproxy.ActionReset, faultproxy.ActionClose} {
		t.Run(action.String(), func(t *testing.T) {
			c := &tsCase{
				name: "blip (" + action.String() + " every flow 100 ms every 1-1.5 s)", methods: tsAllMethods, body: 64,
				gap:   gapAround(12*time.Millisecond, 4*time.Millisecond),
				proxy: &faultproxy.Config{},
				during: func(p *faultproxy.Proxy, done <-chan struct{}) {
					rng := rand.New(rand.NewPCG(3, 0))
					for {
						select {
						case <-time.After(time.Second + time.Duration(rng.Int64N(int64(500*time.Millisecond)))):
							p.Blip(100*time.Millisecond, action)
						case <-done:
							return
						}
					}
				},
				timeout: 5 * time.Second,
			}
			stock, ours := c.compare(t, 8, 300)
			require.NotZero(t, stock.errTotal(tsAllMethods...), "stock net/http did not see the blips")
			requireSafe(t, ours, http.MethodGet, http.MethodPut, http.MethodDelete)
			requireNeverWorse(t, stock, ours)
		})
	}
}

// requireNeverWorse asserts that rstpool surfaced no more errors than
// stock in total, and in each method's cell no more than a count that
// chance explains: the two clients meet the same faults at slightly
// different moments, so two equal rates give counts that differ by about
// the square root of their sum. A cell where rstpool is worse by more
// than three times that (a one-sided chance of about 1 in 700 when the
// rates are equal; rstpool's is lower) fails. Idempotent cells are held
// to zero by requireSafe.
func requireNeverWorse(t *testing.T, stock, ours *tsSide) {
	t.Helper()
	var st, ou int
	for m := range ours.sent {
		st, ou = st+stock.errs[m], ou+ours.errs[m]
		chance := 3 * math.Sqrt(float64(stock.errs[m]+ours.errs[m]))
		require.LessOrEqual(t, float64(ours.errs[m]), float64(stock.errs[m])+chance,
			"%s: rstpool surfaced more errors than stock (%d vs %d), beyond chance:\n%s", m, ours.errs[m], stock.errs[m], strings.Join(ours.all, "\n"))
	}
	require.LessOrEqual(t, ou, st, "rstpool surfaced more errors than stock in total:\n%s", strings.Join(ours.all, "\n"))
}
