package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of each copy buffer; one per direction per flow.
const bufSize = 32 << 10

// dialTimeout bounds the dial to the upstream; it is on loopback.
const dialTimeout = 5 * time.Second

// Proxy is a running fault-injecting TCP proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	cfg      Config // the caller's config, copied; never modified
	addr     string // listen address, fixed for the proxy's life
	maxConns int
	start    time.Time // origin of the monotonic clock of now
	ctx      context.Context
	cancel   context.CancelFunc
	bufs     sync.Pool
	stats    counters

	idle      atomic.Pointer[idlePolicy]
	blackHole atomic.Bool
	blip      atomic.Pointer[blip]

	mu        sync.Mutex
	ln        net.Listener // nil while refusing
	closed    bool
	flows     map[*flow]struct{}
	rng       *rand.Rand // chooses flows for the fractions; guarded by mu
	reopenAt  time.Time  // end of the current refusal window
	reopening bool       // a reopen goroutine is running
	waiters   []chan error
	wg        sync.WaitGroup // accept loops, flows, reopen
}

// A blip is a window during which every flow that carries a byte ends.
type blip struct {
	until  int64 // p.now() when it ends
	action Action
}

type idlePolicy struct {
	timeout time.Duration
	action  Action
}

// Start validates cfg, listens, and serves until Close. The upstream is dialed
// once per accepted connection.
func Start(cfg Config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.listen())
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	cfg.EarlyResponse = bytes.Clone(cfg.EarlyResponse)
	p := &Proxy{
		cfg:      cfg,
		addr:     ln.Addr().String(),
		maxConns: cfg.maxConns(),
		start:    time.Now(),
		flows:    make(map[*flow]struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	p.idle.Store(&idlePolicy{cfg.IdleTimeout, cfg.IdleAction})
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	p.wg.Add(1)
	go p.forgetIdle()
	return p, nil
}

// forgetIdle forgets, as their idle timeout passes, the flows whose idle
// action is ActionReset, the way a NAT or a load balancer does: the
// client's socket goes without a FIN or an RST, so that its next bytes
// meet no socket, and the kernel answers them with an RST, acknowledging
// none. Where the socket cannot go silently (TCP_REPAIR needs
// CAP_NET_ADMIN), the flow is forgotten when its next bytes arrive, as
// before: acknowledged, then reset.
func (p *Proxy) forgetIdle() {
	defer p.wg.Done()
	for {
		pol := p.idle.Load()
		tick := 50 * time.Millisecond
		if pol.timeout > 0 {
			tick = max(pol.timeout/20, 2*time.Millisecond)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(tick):
		}
		if pol.timeout <= 0 || pol.action != ActionReset {
			continue
		}
		now := p.now()
		for _, f := range p.openFlows() {
			f.forgetSilently(now)
		}
	}
}

// Addr returns the address clients connect to, "127.0.0.1:port". It stays the
// same across Refuse and Restart.
func (p *Proxy) Addr() string { return p.addr }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats { return p.stats.snapshot() }

// BlackHole turns the black hole on or off for every flow, open or new. While
// on, bytes from either side are read and discarded silently; new connections
// are still accepted. Discarded bytes do not count as activity for the idle
// timeout.
func (p *Proxy) BlackHole(on bool) { p.blackHole.Store(on) }

// SetIdleTimeout replaces Config.IdleTimeout and Config.IdleAction for every
// flow, open or new. A flow already forgotten keeps the action it was
// forgotten with.
func (p *Proxy) SetIdleTimeout(d time.Duration, a Action) {
	p.idle.Store(&idlePolicy{d, a})
}

// ResetAll resets every open flow now: an RST to the client, a close to the
// upstream.
func (p *Proxy) ResetAll() {
	for _, f := range p.openFlows() {
		f.kill(true, false, &p.stats.resets)
	}
}

// Blip ends every open flow now with a (ActionReset: an RST to the client;
// ActionClose: a FIN), and for d from now every flow, new ones included,
// the moment it carries a byte: a proxy reload or a flapping link. New
// connections are still accepted. ActionDrop is not a blip: use BlackHole.
func (p *Proxy) Blip(d time.Duration, a Action) {
	p.blip.Store(&blip{until: p.now() + int64(d), action: a})
	p.stats.blips.Add(1)
	for _, f := range p.openFlows() {
		go f.end(a)
	}
}

// blipping returns the action of the blip in force at now, if any.
func (p *Proxy) blipping(now int64) (Action, bool) {
	if b := p.blip.Load(); b != nil && now < b.until {
		return b.action, true
	}
	return 0, false
}

// Close stops listening, closes every flow, and waits for every goroutine of
// the proxy to return. Calling it again is harmless.
func (p *Proxy) Close() error {
	p.mu.Lock()
	var err error
	if !p.closed {
		p.closed = true
		p.cancel()
		if p.ln != nil {
			err = p.ln.Close()
			p.ln = nil
		}
	}
	p.mu.Unlock()
	for _, f := range p.openFlows() {
		f.shut()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) openFlows() []*flow {
	p.mu.Lock()
	defer p.mu.Unlock()
	fs := make([]*flow, 0, len(p.flows))
	for f := range p.flows {
		fs = append(fs, f)
	}
	return fs
}

func (p *Proxy) remove(f *flow) {
	p.mu.Lock()
	delete(p.flows, f)
	p.mu.Unlock()
	p.stats.open.Add(-1)
}

// now is the proxy's monotonic clock in nanoseconds.
func (p *Proxy) now() int64 { return int64(time.Since(p.start)) }

func (p *Proxy) getBuf() *[]byte  { return p.bufs.Get().(*[]byte) }
func (p *Proxy) putBuf(b *[]byte) { p.bufs.Put(b) }

// closeConn closes c; with rst it first sets SO_LINGER to 0 so the kernel
// sends an RST instead of a FIN.
func closeConn(c *net.TCPConn, rst bool) {
	if c == nil {
		return
	}
	if rst {
		_ = c.SetLinger(0)
	}
	_ = c.Close()
}
