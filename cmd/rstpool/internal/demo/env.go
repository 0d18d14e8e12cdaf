package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
)

// An env is one client's hostile path: a server behind a proxy that acts
// as a load balancer, and the goroutine that restarts it.
type env struct {
	srv   *Server
	proxy *faultproxy.Proxy

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startEnv starts the server and the proxy in front of it. Restarts begin
// with startRestarts.
func startEnv(c Config) (*env, error) {
	srv, err := StartServer(c.ServerIdle)
	if err != nil {
		return nil, err
	}
	p, err := faultproxy.Start(proxyConfig(c, srv.Addr()))
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("demo: proxy: %w", err)
	}
	return &env{srv: srv, proxy: p, stop: func() {}}, nil
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

// url is the base URL of the server, through the proxy.
func (e *env) url() string { return "http://" + e.proxy.Addr() }

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
	_ = e.srv.Close()
}
