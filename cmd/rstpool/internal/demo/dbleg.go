package demo

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
)

// maxDBQueries bounds the schedule of a database leg, which runs after the
// HTTP legs: enough idle gaps to show reaping, without doubling the demo.
const maxDBQueries = 400

// A database is a server the database leg can ping with its cheapest
// request, by hand, at its default local address.
type database struct {
	name, addr string
	handshake  func(net.Conn) error // after connect; nil: none
	query      func(net.Conn) error
}

// databases are the servers --with names.
var databases = map[string]database{
	"postgres": {
		name: "postgres", addr: "127.0.0.1:5432",
		handshake: func(c net.Conn) error { return pgStartup(c, "postgres", "postgres") },
		query:     func(c net.Conn) error { return pgQuery(c, "SELECT 1") },
	},
	"redis": {name: "redis", addr: "127.0.0.1:6379", query: respPing},
}

// DBResult is the outcome of a database leg: the naive pool, then
// rstpool.Pool, both through a proxy that reaps idle flows.
type DBResult struct {
	Name    string         `json:"name"`
	Addr    string         `json:"addr"`
	Skipped string         `json:"skipped,omitempty"` // why the leg did not run
	Clients []ClientResult `json:"clients,omitempty"`
}

// runDatabase runs the leg of one database, or reports why it was skipped.
func runDatabase(ctx context.Context, cfg Config, name string) DBResult {
	db, ok := databases[name]
	if !ok {
		return DBResult{Name: name, Skipped: fmt.Sprintf("unknown database %q (want postgres or redis)", name)}
	}
	res := DBResult{Name: name, Addr: db.addr}
	if err := db.reachable(ctx); err != nil {
		res.Skipped = fmt.Sprintf("%s not reachable at %s (%v): leg skipped", name, db.addr, err)
		return res
	}
	sched := Workload{Requests: min(cfg.Requests, maxDBQueries), Seed: cfg.Seed, Idle: cfg.LBIdle, LongGaps: cfg.LongGaps}.Schedule()
	for _, b := range sched {
		for i := range b.Requests {
			b.Requests[i].Kind = KindGet // a ping is idempotent
		}
	}
	res.Clients = db.runClients(ctx, cfg, sched)
	return res
}

// reachable connects once, directly, and runs the handshake and a query.
func (db database) reachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", db.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return db.connect(c)
}

func (db database) connect(c net.Conn) error {
	if db.handshake != nil {
		if err := db.handshake(c); err != nil {
			return err
		}
	}
	return db.query(c)
}

// runClients runs the naive pool and rstpool.Pool concurrently, each through
// its own proxy.
func (db database) runClients(ctx context.Context, cfg Config, sched []Burst) []ClientResult {
	names := []string{"naive pool", "rstpool.Pool"}
	out := make([]ClientResult, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = db.runClient(ctx, cfg, sched, names[i])
		}()
	}
	wg.Wait()
	return out
}

func (db database) runClient(ctx context.Context, cfg Config, sched []Burst, name string) ClientResult {
	res := ClientResult{Name: name, Transport: name + " of " + db.name + " connections"}
	p, err := faultproxy.Start(proxyConfig(cfg, db.addr))
	if err != nil {
		res.Audit = err.Error()
		return res
	}
	defer p.Close()
	send, idle, closePool, err := db.pool(cfg, p.Addr(), name == "rstpool.Pool")
	if err != nil {
		res.Audit = err.Error()
		return res
	}
	l := newLeg(send, cfg.Concurrency, min(cfg.Requests, maxDBQueries))
	start := time.Now()
	l.run(ctx, sched)
	closePool()
	res.IdleTimeout, res.Audit, res.AuditOK = idle.String(), "ok", true
	if err := dbChain(cfg).Check(idle); err != nil {
		res.Audit, res.AuditOK = err.Error(), false
	}
	res.summarize(sched, l.outcomes)
	res.Proxy, res.Elapsed = p.Stats(), time.Since(start).Seconds()
	return res
}

// dbChain is the database's path: the proxy as a load balancer; the
// database itself keeps idle sessions.
func dbChain(cfg Config) rstpool.Chain {
	return rstpool.Chain{{Name: "lb", IdleTimeout: cfg.LBIdle}}
}

// pool returns the sender of a pool of connections to addr: rstpool.Pool
// over an rstpool.Dialer that declares the chain, or the naive pool over a
// plain net.Dialer. idle is the pool's idle timeout (0: none).
func (db database) pool(cfg Config, addr string, checked bool) (send sender, idle time.Duration, closePool func(), err error) {
	if !checked {
		np := &naivePool{dial: db.dialer(addr, &net.Dialer{})}
		return func(_ Request, conns *int32) error {
			return np.do(context.Background(), db.timed(db.query), conns)
		}, 0, np.close, nil
	}
	d := &rstpool.Dialer{Chain: dbChain(cfg)}
	rp, err := rstpool.NewPool(rstpool.PoolConfig{Dialer: d, Dial: db.dialer(addr, d), MaxSize: int32(max(cfg.Concurrency, 1))})
	if err != nil {
		return nil, 0, nil, err
	}
	return func(_ Request, conns *int32) error {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			return rp.Do(ctx, true, func(c net.Conn) error {
				atomic.AddInt32(conns, 1)
				return db.timed(db.query)(c)
			})
		}, dbChain(cfg).ClientIdleTimeout(), func() {
			_ = rp.Close(context.Background())
		}, nil
}

// contextDialer is a net.Dialer or an rstpool.Dialer.
type contextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// dialer returns a function that connects to addr through d and runs the
// handshake.
func (db database) dialer(addr string, d contextDialer) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if db.handshake != nil {
			if err := db.timed(db.handshake)(c); err != nil {
				_ = c.Close()
				return nil, err
			}
		}
		return c, nil
	}
}

// timed bounds one exchange on a connection with a deadline.
func (db database) timed(fn func(net.Conn) error) func(net.Conn) error {
	return func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(requestTimeout))
		err := fn(c)
		_ = c.SetDeadline(time.Time{})
		return err
	}
}
