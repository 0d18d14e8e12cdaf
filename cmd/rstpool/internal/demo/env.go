package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
)

// An env is one client's hostile path: a proxy that acts as a load
// balancer in front of the client's server (the demo's HTTP server, or a
// database), and the goroutine that restarts the proxy.
type env struct {
	srv   *Server // nil in front of a database
	proxy *faultproxy.Proxy

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startHTTPEnv starts an HTTP server and the proxy in front of it.
func startHTTPEnv(c Config) (*env, error) {
	srv, err := StartServer(c.ServerIdle)
	if err != nil {
		return nil, err
	}
	e, err := startEnv(c, srv.Addr())
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	e.srv = srv
	return e, nil
}

// startEnv starts a proxy in front of upstream. Restarts begin with
// startRestarts.
func startEnv(c Config, upstream string) (*env, error) {
	p, err := faultproxy.Start(proxyConfig(c, upstream))
	if err != nil {
		return nil, fmt.Errorf("demo: proxy: %w", err)
	}
	return &env{proxy: p, stop: func() {}}, nil
}

// proxyConfig turns the fault mix into the proxy's configuration.
func proxyConfig(c Config, upstream string) faultproxy.Config {
	pc := faultproxy.Config{Upstream: upstream, Seed: c.Seed}
	if c.Faults.Reap {
		pc.IdleTimeout, pc.IdleAction = c.LBIdle, faultproxy.ActionReset
	}
	if c.Faults.ResetRate > 0 {
		pc.ResetAfterBytes = c.Faults.ResetAfter
		pc.ResetFraction = c.Faults.ResetRate
		pc.ResetDirection = faultproxy.Up
	}
	return pc
}

// startRestarts restarts the proxy at seeded random times (exponential,
// mean every) until the env closes.
func (e *env) startRestarts(seed int64, every, down time.Duration) {
	if every <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbad))
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for sleep(ctx, time.Duration(rng.ExpFloat64()*float64(every))) {
			select {
			case <-e.proxy.Restart(down):
			case <-ctx.Done():
				return
			}
		}
	}()
}

// close stops the restarts, then the proxy and the server.
func (e *env) close() {
	e.stop()
	e.wg.Wait()
	_ = e.proxy.Close()
	if e.srv != nil {
		_ = e.srv.Close()
	}
}
