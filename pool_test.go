package rstpool

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// poolFor returns a pool on srv with upkeep off unless cfg says otherwise;
// it is closed with the test.
func poolFor(t *testing.T, srv *lineServer, cfg PoolConfig) *Pool {
	t.Helper()
	if cfg.Addr == "" && cfg.Dial == nil {
		cfg.Addr = srv.addr
	}
	if cfg.Dialer == nil {
		cfg.Dialer = noRetry()
	}
	if cfg.UpkeepInterval == 0 {
		cfg.UpkeepInterval = -1
	}
	p, err := NewPool(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, p.Close(ctx))
	})
	return p
}

// poolWarm checks out n connections at once and releases them all, so the
// pool holds n idle connections.
func poolWarm(t *testing.T, p *Pool, n int) {
	t.Helper()
	hs := make([]PooledConn, n)
	for i := range hs {
		h, err := p.Acquire(context.Background())
		require.NoError(t, err)
		hs[i] = h
	}
	for _, h := range hs {
		h.Release()
	}
}

// poolWaitIdleHealth waits until every idle connection of p reports h.
func poolWaitIdleHealth(t *testing.T, p *Pool, want Health) {
	t.Helper()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for e := range p.open {
			if got, _ := e.tc.Check(); got != want {
				return false
			}
		}
		return true
	}, 2*time.Second, time.Millisecond)
}

func TestNewPoolRejectsBadConfig(t *testing.T) {
	ping := func(context.Context, net.Conn) error { return nil }
	cases := map[string]PoolConfig{
		"PoolConfig.Addr":              {},
		"PoolConfig.MaxSize":           {Addr: "127.0.0.1:1", MaxSize: -1},
		"PoolConfig.MinIdle":           {Addr: "127.0.0.1:1", MaxSize: 2, MinIdle: 3},
		"PoolConfig.LifetimeJitter":    {Addr: "127.0.0.1:1", MaxLifetime: time.Minute, LifetimeJitter: time.Minute},
		"PoolConfig.KeepAliveInterval": {Addr: "127.0.0.1:1", KeepAliveInterval: time.Second},
		"PoolConfig.PingTimeout":       {Addr: "127.0.0.1:1", PingTimeout: -time.Second},
		"PoolConfig.UpkeepPings":       {Addr: "127.0.0.1:1", UpkeepPings: -1},
		"PoolConfig.IdleTimeout": {Addr: "127.0.0.1:1", IdleTimeout: time.Minute,
			Dialer: &Dialer{Chain: Chain{{Name: "ALB", IdleTimeout: time.Minute}}}},
		"Dialer.KeepAliveCount": {Addr: "127.0.0.1:1", Dialer: &Dialer{KeepAliveCount: 1000}},
	}
	cases["PoolConfig.KeepAliveInterval"+" >= idle"] = PoolConfig{Addr: "127.0.0.1:1", Ping: ping,
		IdleTimeout: time.Second, KeepAliveInterval: time.Second}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewPool(cfg)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, name, ce.Field)
		})
	}
}

func TestPoolZeroConfigDefaults(t *testing.T) {
	cfg := PoolConfig{Addr: "127.0.0.1:1"}
	s, err := cfg.settings()
	require.NoError(t, err)
	require.GreaterOrEqual(t, s.maxSize, int32(4))
	require.Equal(t, DefaultIdleTimeout, s.idleTimeout, "the Dialer's idle limit")
	require.LessOrEqual(t, s.maxLifetime, time.Duration(0), "no hop caps lifetimes by default")
	require.Equal(t, DefaultPeekAfter, s.peekAfter)
	require.Equal(t, DefaultPingAfter, s.pingAfter)
	require.Equal(t, DefaultUpkeepInterval, s.upkeepInterval)

	chain := Chain{{Name: "nginx", IdleTimeout: 8 * time.Second}, {Name: "cap", MaxLifetime: time.Hour}}
	cfg = PoolConfig{Addr: "127.0.0.1:1", Dialer: &Dialer{Chain: chain}}
	s, err = cfg.settings()
	require.NoError(t, err)
	require.Equal(t, 6*time.Second, s.idleTimeout, "from the chain")
	require.Equal(t, time.Hour, s.maxLifetime, "the chain's hard cap")
	require.Equal(t, 6*time.Minute, s.jitter)
	require.Equal(t, 6*time.Second, s.upkeepInterval, "at most the idle timeout")
}

func TestPoolSizesAndReuse(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 2})
	a, err := p.Acquire(context.Background())
	require.NoError(t, err)
	b, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.False(t, a.Reused())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = p.Acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a full pool makes Acquire wait")

	a.Release()
	c, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.True(t, c.Reused())
	require.Same(t, a.Conn(), c.Conn())
	require.Equal(t, int64(2), c.Conn().(*Conn).Stats().Checkouts, "a checkout mark at each Acquire")
	st := p.Stats()
	require.Equal(t, int32(2), st.AcquiredConns)
	require.Equal(t, int64(2), st.Dials)
	require.Zero(t, st.DialErrors, "the idle-only fast path of Acquire dials nothing, nor tries to")
	c.Release()
	b.Destroy()
	require.Eventually(t, func() bool { return p.Stats().TotalConns == 1 }, time.Second, time.Millisecond)
}

func TestPoolHandleMisusePanics(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	h.Release()
	require.PanicsWithValue(t, "rstpool: PooledConn.Release called on a connection already released or destroyed", h.Release)
	require.PanicsWithValue(t, "rstpool: PooledConn.Destroy called on a connection already released or destroyed", h.Destroy)

	h2, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.Same(t, h.e, h2.e, "the stale handle's slot is in use again")
	require.Panics(t, h.Release, "a stale handle must not release another caller's checkout")
	require.Panics(t, h.Destroy, "nor destroy it")
	copied := h2
	copied.Release()
	require.Panics(t, h2.Destroy, "a handle and its copies are one checkout")
	h3, err := p.Acquire(context.Background())
	require.NoError(t, err)
	h3.Destroy()
	require.Panics(t, h3.Release)
	require.Panics(t, PooledConn{}.Release, "the zero PooledConn holds no connection")
}

func TestPoolAcquireReleaseAllocatesNothing(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	poolWarm(t, p, 1)
	allocs := testing.AllocsPerRun(100, func() {
		h, err := p.Acquire(context.Background())
		if err != nil {
			panic(err)
		}
		h.Release()
	})
	require.Zero(t, allocs, "Acquire+Release on a warm pool")
}

func TestPoolBoundedLoopThenRedial(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 5, PeekAfter: time.Nanosecond})
	poolWarm(t, p, 5)
	// A connection still in the accept queue would see an RST, not a FIN.
	require.Eventually(t, func() bool { return srv.acceptCount() == 5 }, time.Second, time.Millisecond)
	srv.down() // a restart: every idle connection sees a FIN
	srv.up()
	poolWaitIdleHealth(t, p, HealthClosed)

	before := p.Stats().AcquireCount
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	defer h.Release()
	st := p.Stats()
	require.Equal(t, int64(maxStale), st.Retired.PeerClosed, "three dead connections inspected")
	require.Equal(t, int64(maxStale), st.AcquireCount-before, "then the third slot is redialed, not a fourth tried")
	require.Equal(t, int64(6), st.Dials)
	got, err := lsCall(h.Conn(), "ECHO hi")
	require.NoError(t, err)
	require.Equal(t, "hi", got)
}

func TestPoolIdleAndLifetimeCheckedAtCheckout(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, IdleTimeout: 30 * time.Millisecond})
	poolWarm(t, p, 1)
	time.Sleep(40 * time.Millisecond)
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	h.Release()
	require.Equal(t, int64(1), p.Stats().Retired.IdleLimit)

	p2 := poolFor(t, srv, PoolConfig{MaxSize: 1, MaxLifetime: 30 * time.Millisecond, LifetimeJitter: -1})
	poolWarm(t, p2, 1)
	time.Sleep(40 * time.Millisecond)
	h, err = p2.Acquire(context.Background())
	require.NoError(t, err)
	h.Release()
	st := p2.Stats()
	require.Equal(t, int64(1), st.Retired.Lifetime)
	require.Equal(t, int64(2), st.Dials)
}

func TestPoolLifetimeJitterOnlyShortens(t *testing.T) {
	const life, jitter = time.Hour, 10 * time.Minute
	p, err := NewPool(PoolConfig{
		Dial:           func(context.Context) (net.Conn, error) { c, _ := net.Pipe(); return c, nil },
		MaxSize:        64,
		MaxLifetime:    life,
		LifetimeJitter: jitter,
		UpkeepInterval: -1,
	})
	require.NoError(t, err)
	defer p.Close(context.Background())
	var spread = map[int64]bool{}
	for range 64 {
		h, err := p.Acquire(context.Background())
		require.NoError(t, err)
		got := time.Duration(h.e.life)
		require.LessOrEqual(t, got, life, "jitter must never lengthen a lifetime")
		require.Greater(t, got, life-jitter)
		spread[int64(got)] = true
		defer h.Release()
	}
	require.Greater(t, len(spread), 32, "lifetimes are spread")
}

func TestPoolUntrackedConnsUsePing(t *testing.T) {
	var peers []net.Conn
	p, err := NewPool(PoolConfig{
		Dial: func(context.Context) (net.Conn, error) {
			c, s := net.Pipe()
			peers = append(peers, s)
			go lsPipeServe(s)
			return c, nil
		},
		MaxSize:        1,
		Ping:           lsPing,
		PingAfter:      time.Nanosecond,
		UpkeepInterval: -1,
	})
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO a", "a")))
	require.NoError(t, peers[0].Close(), "the peer goes away while the conn is idle")
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO b", "b")))
	st := p.Stats()
	require.Equal(t, int64(1), st.Retired.PingFailed, "no peek on a net.Pipe: the ping caught it")
	require.Equal(t, int64(2), st.Dials)
	require.Len(t, peers, 2)
}

// lsPipeServe answers the line protocol on one end of a net.Pipe.
func lsPipeServe(c net.Conn) {
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
		if cmd == "PING" {
			arg = "PONG"
		}
		if _, err := c.Write([]byte(arg + "\n")); err != nil {
			return
		}
	}
}

// lsExpect returns a Do function that sends line and expects want.
func lsExpect(line, want string) func(net.Conn) error {
	return func(c net.Conn) error {
		got, err := lsCall(c, line)
		if err == nil && got != want {
			err = errors.New("unexpected answer " + got)
		}
		return err
	}
}
