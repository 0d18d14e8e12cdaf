//go:build linux

package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/netns"
	"github.com/rstpool/rstpool/rstpgx"
	"github.com/stretchr/testify/require"
)

// nsRelay listens on the loopback of a network namespace and forwards each
// connection to upstream, dialed from the host's namespace: a client inside
// the namespace reaches a server of the host through it, and a Drop of the
// relay's port in the namespace silences the client's flow alone.
type nsRelay struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startNSRelay(t *testing.T, ns *netns.NS, upstream string) *nsRelay {
	t.Helper()
	r := &nsRelay{upstream: upstream}
	require.NoError(t, ns.Do(func() (err error) {
		r.ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	}))
	r.wg.Go(r.serve)
	t.Cleanup(r.close)
	return r
}

func (r *nsRelay) port() uint16 { return uint16(r.ln.Addr().(*net.TCPAddr).Port) }

func (r *nsRelay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", r.upstream, 5*time.Second) // this goroutine is in the host's namespace
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, u)
		r.mu.Unlock()
		r.wg.Go(func() { io.Copy(u, c); u.Close() })
		r.wg.Go(func() { io.Copy(c, u); c.Close() })
	}
}

// close stops the relay and waits for its goroutines.
func (r *nsRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// dialInNS makes dial create its socket inside ns.
func dialInNS(ns *netns.NS, dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = ns.Do(func() error {
			c, err = dial(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// blackHoleDialer bounds a black hole at 2.5 s: keepalive after 1 s of
// quiet, one probe, and TCP_USER_TIMEOUT above idle + interval.
func blackHoleDialer() *rstpool.Dialer {
	return &rstpool.Dialer{KeepAliveIdle: time.Second, KeepAliveInterval: time.Second, KeepAliveCount: 1,
		UserTimeout: 2500 * time.Millisecond}
}

// TestPGPacketBlackHole drops every packet of a pooled connection's flow
// while a query is in flight: stock pgx waits for the caller's deadline,
// the rstpool Dialer's TCP_USER_TIMEOUT ends the query with ETIMEDOUT.
func TestPGPacketBlackHole(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skip(err.Error())
	}
	s := newPGScenario(t, "netns")
	const deadline = 6 * time.Second
	took := map[bool]time.Duration{}
	for _, ours := range []bool{false, true} {
		t.Run(map[bool]string{false: "stock", true: "rstpool"}[ours], func(t *testing.T) {
			ns := netns.New(t)
			relay := startNSRelay(t, ns, pgAddr())
			pool := blackHolePool(t, s, ns, relay, ours)
			ctx := context.Background()
			_, err := pool.Exec(ctx, "select 1")
			require.NoError(t, err)

			ns.Drop(relay.port())
			qctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			start := time.Now()
			_, err = pool.Exec(qctx, "select 1")
			took[ours] = time.Since(start)
			t.Logf("query into the black hole failed after %v: %v (class %s)", took[ours].Round(10*time.Millisecond), err, rstpool.Classify(err))
			require.Error(t, err)
			if ours {
				// The kernel ends the flow with ETIMEDOUT (a *rstpool.ConnError
				// of class timeout); pgx takes any net.Error whose Timeout()
				// is true for its own deadline, reads again and reports the
				// EOF that follows as "unexpected EOF".
				require.NoError(t, qctx.Err(), "the user timeout ended it, before the caller's deadline")
				require.Contains(t, []rstpool.Class{rstpool.ClassTimeout, rstpool.ClassPeerClosed}, rstpool.Classify(err))
			} else {
				require.True(t, errors.Is(err, context.DeadlineExceeded) || qctx.Err() != nil, "stock waits for the deadline: %v", err)
			}

			ns.Flush()
			_, err = pool.Exec(ctx, "select 1")
			require.NoError(t, err, "a new connection once the flow is back")
		})
	}
	t.Logf("packet black hole mid-query: stock failed after %v (its deadline %v), rstpool after %v",
		took[false].Round(10*time.Millisecond), deadline, took[true].Round(10*time.Millisecond))
}

// blackHolePool opens a one-connection pgxpool whose sockets live in ns
// and reach PostgreSQL through the relay.
func blackHolePool(t *testing.T, s *pgScenario, ns *netns.NS, relay *nsRelay, ours bool) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(pgURL(relay.ln.Addr().String(), s.role, s.app))
	require.NoError(t, err)
	cfg.MaxConns = 1
	if ours {
		rstpgx.Configure(cfg, blackHoleDialer())
	} else {
		cfg.ConnConfig.DialFunc = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	}
	cfg.ConnConfig.DialFunc = dialInNS(ns, cfg.ConnConfig.DialFunc)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}
