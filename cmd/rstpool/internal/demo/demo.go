package demo

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rstpool/rstpool"
)

// Report is the outcome of Run. Its JSON form has snake_case keys and every
// duration as a number of milliseconds in a key ending "_ms".
type Report struct {
	Requests    int            `json:"requests"`
	Seed        int64          `json:"seed"`
	Concurrency int            `json:"concurrency"`
	Chain       string         `json:"chain"` // the declared path, client side first
	LBIdle      Ms             `json:"lb_idle_ms"`
	ServerIdle  Ms             `json:"server_idle_ms"`
	Faults      FaultsReport   `json:"faults"`
	IdleGaps    Ms             `json:"idle_gaps_ms"` // the sum of the schedule's gaps
	Clients     []ClientResult `json:"clients"`      // stock, then rstpool
	Databases   []DBResult     `json:"databases"`    // one per Config.Databases
	Elapsed     Ms             `json:"elapsed_ms"`
}

// FaultsReport is Faults as the report shows it.
type FaultsReport struct {
	Reap            bool    `json:"reap"`
	ResetRate       float64 `json:"reset_rate"`
	ResetAfterBytes int64   `json:"reset_after_bytes"`
	RestartEvery    Ms      `json:"restart_every_ms"` // 0: no restarts
	RestartDown     Ms      `json:"restart_down_ms"`
}

// A client is one of the clients under comparison, over its own hostile
// path.
type client struct {
	name, about string
	idle        time.Duration // its idle limit, for the audit; 0: none
	chain       rstpool.Chain // the path, for the audit
	sched       []Burst
	env         *env
	send        sender
	stats       func() map[string]int64                    // its own counters; nil: none
	tally       func(context.Context) (ServerTally, error) // what its server counted, after the run
	close       func()                                     // closes its idle connections
	leg         *leg
}

// httpClients returns the stock transport, with net/http's defaults, and an
// rstpool.Transport whose Dialer declares the chain, each over its own path.
func httpClients(cfg Config, sched []Burst) ([]*client, error) {
	chain := cfg.Chain()
	stock := http.DefaultTransport.(*http.Transport).Clone()
	rp := &rstpool.Transport{Dialer: &rstpool.Dialer{Chain: chain}}
	rts := []http.RoundTripper{stock, rp}
	cs := []*client{
		{name: "stock", about: "net/http Transport, defaults",
			idle: stock.IdleConnTimeout, close: stock.CloseIdleConnections},
		{name: "rstpool", about: "rstpool.Transport, Dialer{Chain}",
			idle: chain.ClientIdleTimeout(), close: rp.CloseIdleConnections,
			stats: func() map[string]int64 { return transportStats(rp.Stats()) }},
	}
	for i, c := range cs {
		e, err := startHTTPEnv(cfg)
		if err != nil {
			closeClients(cs[:i])
			return nil, err
		}
		c.env, c.chain, c.sched = e, chain, sched
		c.send = httpSender(rts[i], "http://"+e.proxy.Addr())
		c.tally = func(context.Context) (ServerTally, error) { return e.srv.Tally(), nil }
	}
	return cs, nil
}

func transportStats(s rstpool.TransportStats) map[string]int64 {
	return map[string]int64{
		"requests":                s.Requests,
		"retries":                 s.Retried,
		"retries_nothing_written": s.RetriedNothingWritten,
		"retries_idempotent":      s.RetriedIdempotent,
		"errors":                  s.Surfaced,
	}
}

// Run runs the same schedule through every client at the same time, each
// over its own hostile path: stock net/http and rstpool.Transport, then a
// stock and an rstpool client of each database in cfg.Databases. It returns
// early, with what was sent, when ctx ends or Config.Duration passes.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dbs, err := reachDatabases(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeDBLegs(dbs)
	sched := cfg.schedule()
	groups, err := startGroups(cfg, sched, dbs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	runGroups(ctx, cfg, groups)
	rep := newReport(cfg, sched, groups[0].result(ctx))
	for i, l := range dbs {
		rep.Databases = append(rep.Databases, l.result(ctx, groups[1:], i))
	}
	rep.Elapsed = Ms(time.Since(start))
	return rep, nil
}

// A group is the clients one line of progress counts: each HTTP client on
// its own, the two clients of a database together.
type group struct {
	name      string
	perClient bool // one line of progress per client
	clients   []*client
}

// startGroups sets up the HTTP clients' group, then one group per database
// that can run; nil groups stand for skipped databases.
func startGroups(cfg Config, sched []Burst, dbs []*dbLeg) ([]*group, error) {
	cs, err := httpClients(cfg, sched)
	if err != nil {
		return nil, err
	}
	groups := []*group{{name: "http", perClient: true, clients: cs}}
	for _, l := range dbs {
		var g *group
		if l.skipped == "" {
			dcs, err := l.clients(cfg, sched)
			if err != nil {
				closeGroups(groups)
				return nil, err
			}
			g = &group{name: l.db.Name, clients: dcs}
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func closeGroups(groups []*group) {
	for _, g := range groups {
		if g != nil {
			closeClients(g.clients)
		}
	}
}

// closeClients closes the clients and their paths.
func closeClients(cs []*client) {
	for _, c := range cs {
		c.close()
		c.env.close()
	}
}

// runGroups runs every client's leg concurrently, with restarts of their
// proxies, and reports progress.
func runGroups(ctx context.Context, cfg Config, groups []*group) {
	var all []*client
	for _, g := range groups {
		if g != nil {
			all = append(all, g.clients...)
		}
	}
	for _, c := range all {
		c.leg = newLeg(c.send, cfg.Concurrency, cfg.Requests)
		c.env.startRestarts(cfg.Seed, cfg.Faults.RestartEvery, cfg.Faults.RestartDown)
	}
	stop := reportProgress(cfg, groups)
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() {
			start := time.Now()
			c.leg.run(ctx, c.sched)
			c.leg.elapsed = time.Since(start)
		})
	}
	wg.Wait()
	stop()
}

// result summarizes the group's clients and closes them.
func (g *group) result(ctx context.Context) []ClientResult {
	out := make([]ClientResult, len(g.clients))
	for i, c := range g.clients {
		out[i] = c.result(ctx)
	}
	return out
}

// result summarizes what the client did and what its server and proxy saw,
// and closes it.
func (c *client) result(ctx context.Context) ClientResult {
	c.close()
	defer c.env.close()
	r := ClientResult{Name: c.name, About: c.about, IdleTimeout: Ms(c.idle), Audit: "ok", AuditOK: true}
	if err := c.chain.Check(c.idle); err != nil {
		r.Audit, r.AuditOK = strings.ReplaceAll(err.Error(), "\n", "; "), false
	}
	r.summarize(c.sched, c.leg.outcomes)
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	if r.Server, err = c.tally(tctx); err != nil {
		r.Audit += "; the server's tally failed: " + err.Error()
	}
	r.Duplicates = r.Server.Duplicates
	r.Proxy = proxyTally(c.env.proxy.Stats())
	r.Elapsed = Ms(c.leg.elapsed)
	r.TransportStats = map[string]int64{}
	if c.stats != nil {
		r.TransportStats = c.stats()
	}
	return r
}

// result is the database leg's part of the report; groups[i] holds its
// clients, nil when it was skipped.
func (l *dbLeg) result(ctx context.Context, groups []*group, i int) DBResult {
	res := DBResult{Name: l.db.Name, Client: l.db.Client, Addr: l.db.Addr, Skipped: l.skipped, Clients: []ClientResult{}}
	if g := groups[i]; g != nil {
		res.Clients = g.result(ctx)
	}
	return res
}

// reportProgress calls cfg.Progress periodically until the returned stop
// is called, which makes one last call and waits.
func reportProgress(cfg Config, groups []*group) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	start := time.Now()
	snap := func() Progress {
		p := Progress{Elapsed: time.Since(start)}
		for _, g := range groups {
			p.Clients = append(p.Clients, g.progress(cfg)...)
		}
		return p
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				cfg.Progress(snap())
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		cfg.Progress(snap())
	}
}

// progress is one entry per HTTP client, one per database.
func (g *group) progress(cfg Config) []ClientProgress {
	if g == nil {
		return nil
	}
	if g.perClient {
		var out []ClientProgress
		for _, c := range g.clients {
			out = append(out, ClientProgress{Name: c.name, Done: c.leg.done.Load(), Total: cfg.Requests, Errors: c.leg.failed.Load()})
		}
		return out
	}
	p := ClientProgress{Name: g.name}
	for _, c := range g.clients {
		p.Done += c.leg.done.Load()
		p.Total += cfg.Requests
		p.Errors += c.leg.failed.Load()
	}
	return []ClientProgress{p}
}

func newReport(cfg Config, sched []Burst, results []ClientResult) *Report {
	f := cfg.Faults
	return &Report{
		Requests:    cfg.Requests,
		Seed:        cfg.Seed,
		Concurrency: cfg.Concurrency,
		Chain:       cfg.Chain().String(),
		LBIdle:      Ms(cfg.LBIdle),
		ServerIdle:  Ms(cfg.ServerIdle),
		Faults: FaultsReport{Reap: f.Reap, ResetRate: f.ResetRate, ResetAfterBytes: f.ResetAfter,
			RestartEvery: Ms(f.RestartEvery), RestartDown: Ms(f.RestartDown)},
		IdleGaps:  Ms(Length(sched).Round(time.Millisecond)),
		Clients:   results,
		Databases: []DBResult{},
	}
}
