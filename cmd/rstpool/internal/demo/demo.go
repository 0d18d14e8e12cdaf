package demo

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rstpool/rstpool"
)

// Report is the outcome of Run.
type Report struct {
	Requests    int            `json:"requests"`
	Seed        int64          `json:"seed"`
	Concurrency int            `json:"concurrency"`
	Chain       string         `json:"chain"` // the declared path, client side first
	LBIdle      string         `json:"lb_idle"`
	ServerIdle  string         `json:"server_idle"`
	Faults      Faults         `json:"faults"`
	Schedule    string         `json:"schedule"` // the sum of the idle gaps
	Clients     []ClientResult `json:"clients"`  // stock, then rstpool
	Databases   []DBResult     `json:"databases,omitempty"`
	Elapsed     float64        `json:"elapsed_s"`
}

// A client is one of the two clients under comparison.
type client struct {
	name, about string
	rt          http.RoundTripper
	idle        time.Duration // its idle timeout, for the audit
	stats       func() map[string]int64
	closeIdle   func()
}

// clients returns the stock transport, with net/http's defaults, and an
// rstpool.Transport whose Dialer declares the chain.
func clients(chain rstpool.Chain) []client {
	stock := http.DefaultTransport.(*http.Transport).Clone()
	rp := &rstpool.Transport{Dialer: &rstpool.Dialer{Chain: chain}}
	return []client{
		{name: "stock", about: "net/http Transport, defaults", rt: stock,
			idle: stock.IdleConnTimeout, closeIdle: stock.CloseIdleConnections},
		{name: "rstpool", about: "rstpool.Transport, Dialer{Chain}", rt: rp,
			idle: chain.ClientIdleTimeout(), closeIdle: rp.CloseIdleConnections,
			stats: func() map[string]int64 { return transportStats(rp.Stats()) }},
	}
}

func transportStats(s rstpool.TransportStats) map[string]int64 {
	return map[string]int64{
		"requests":                s.Requests(),
		"retries":                 s.Retries(),
		"retries_nothing_written": s.RetriesBy(rstpool.RetryNothingWritten),
		"retries_idempotent":      s.RetriesBy(rstpool.RetryIdempotent),
		"errors":                  s.Errors(),
	}
}

// Run runs the same schedule through both clients at the same time, each
// over its own hostile path, and reports the outcome. It returns early, with
// what was sent, when ctx ends or Config.Duration passes.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sched := Workload{Requests: cfg.Requests, Seed: cfg.Seed, Idle: cfg.LBIdle, LongGaps: cfg.LongGaps}.Schedule()
	cs := clients(cfg.Chain())
	envs, err := startEnvs(cfg, len(cs))
	if err != nil {
		return nil, err
	}
	defer closeEnvs(envs)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	results := runClients(ctx, cfg, sched, cs, envs)
	rep := newReport(cfg, sched, results)
	for _, name := range cfg.Databases {
		rep.Databases = append(rep.Databases, runDatabase(ctx, cfg, name))
	}
	rep.Elapsed = time.Since(start).Seconds()
	return rep, nil
}

func startEnvs(cfg Config, n int) ([]*env, error) {
	var envs []*env
	for range n {
		e, err := startEnv(cfg)
		if err != nil {
			closeEnvs(envs)
			return nil, err
		}
		envs = append(envs, e)
	}
	for _, e := range envs {
		e.startRestarts(cfg.Seed, cfg.Faults.RestartEvery, cfg.Faults.RestartDown)
	}
	return envs, nil
}

func closeEnvs(envs []*env) {
	for _, e := range envs {
		e.close()
	}
}

// runClients runs every client's leg concurrently and summarizes each.
func runClients(ctx context.Context, cfg Config, sched []Burst, cs []client, envs []*env) []ClientResult {
	legs := make([]*leg, len(cs))
	for i, c := range cs {
		legs[i] = newLeg(httpSender(c.rt, envs[i].url()), cfg.Concurrency, cfg.Requests)
	}
	stop := reportProgress(cfg, cs, legs)
	var wg sync.WaitGroup
	for i := range legs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			legs[i].run(ctx, sched)
			legs[i].elapsed = time.Since(start)
		}()
	}
	wg.Wait()
	stop()
	out := make([]ClientResult, len(cs))
	for i, c := range cs {
		out[i] = c.result(cfg.Chain(), sched, legs[i], envs[i])
	}
	return out
}

// result summarizes what the client did and what its server and proxy saw.
func (c client) result(chain rstpool.Chain, sched []Burst, l *leg, e *env) ClientResult {
	c.closeIdle()
	r := ClientResult{Name: c.name, Transport: c.about, IdleTimeout: c.idle.String(), Audit: "ok", AuditOK: true}
	if err := chain.Check(c.idle); err != nil {
		r.Audit, r.AuditOK = strings.ReplaceAll(err.Error(), "\n", "; "), false
	}
	r.summarize(sched, l.outcomes)
	r.Server = e.srv.Tally()
	r.Duplicates = r.Server.Duplicates
	r.Proxy = e.proxy.Stats()
	r.Elapsed = l.elapsed.Seconds()
	if c.stats != nil {
		r.TransportStats = c.stats()
	}
	return r
}

// reportProgress calls cfg.Progress periodically until the returned stop
// is called, which makes one last call and waits.
func reportProgress(cfg Config, cs []client, legs []*leg) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	start := time.Now()
	snap := func() Progress {
		p := Progress{Elapsed: time.Since(start)}
		for i, l := range legs {
			p.Clients = append(p.Clients, ClientProgress{Name: cs[i].name, Done: l.done.Load(), Total: cfg.Requests, Errors: l.failed.Load()})
		}
		return p
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	}()
	return func() {
		close(done)
		wg.Wait()
		cfg.Progress(snap())
	}
}

func newReport(cfg Config, sched []Burst, results []ClientResult) *Report {
	return &Report{
		Requests:    cfg.Requests,
		Seed:        cfg.Seed,
		Concurrency: cfg.Concurrency,
		Chain:       cfg.Chain().String(),
		LBIdle:      cfg.LBIdle.String(),
		ServerIdle:  cfg.ServerIdle.String(),
		Faults:      cfg.Faults,
		Schedule:    Length(sched).Round(time.Millisecond).String(),
		Clients:     results,
	}
}
