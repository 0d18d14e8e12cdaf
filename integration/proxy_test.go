package integration

import (
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// startProxy puts a fault proxy in front of upstream for the test.
func startProxy(t *testing.T, cfg faultproxy.Config) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// A load balancer that silently forgets flows idle more than 300 ms and
// resets them when they are next used. Only the wait for the client
// counts: PostgreSQL forks a backend for a new session, slower than 300 ms
// on a busy machine, and its late answer must not be taken for an idle
// flow.
func TestPGProxyResetsIdleFlows(t *testing.T) {
	for _, kind := range []string{"pgxpool", "stdlib"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // the two legs share nothing but the server: half the time
			s := newPGScenario(t, "proxy_"+kind)
			d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "lb", IdleTimeout: 300 * time.Millisecond, Middlebox: true}}}
			sideBySide(t, "proxy resets flows idle > 300ms, PostgreSQL "+kind, kind == "pgxpool", func(t *testing.T, ours bool) *result {
				s.reset(t)
				p := startProxy(t, faultproxy.Config{Upstream: pgAddr(), IdleTimeout: 300 * time.Millisecond, IdleAction: faultproxy.ActionReset, IdleWaitsForClient: true})
				tg := s.open(t, kind, p.Addr(), dialerIf(ours, d))
				r := burst(tg, 8)
				r.add(gaps(tg, 8, 5, 350*time.Millisecond, 700*time.Millisecond))
				finish(t, tg, r)
				t.Logf("proxy: %+v", p.Stats())
				return r
			})
		})
	}
}

// A black hole opens while the pool idles and closes before it is used
// again: flows whose bytes vanished must not surface once it has healed.
// (A packet-level black hole, where TCP_USER_TIMEOUT applies, needs a
// network namespace: internal/netns.)
func TestPGProxyBlackHoleWhileIdle(t *testing.T) {
	s := newPGScenario(t, "blackhole")
	sideBySide(t, "proxy black hole 300ms while idle, pgxpool", false, func(t *testing.T, ours bool) *result {
		s.reset(t)
		p := startProxy(t, faultproxy.Config{Upstream: pgAddr()})
		tg := s.open(t, "pgxpool", p.Addr(), dialerIf(ours, &rstpool.Dialer{}))
		r := burst(tg, 8)
		p.BlackHole(true)
		time.Sleep(300 * time.Millisecond)
		p.BlackHole(false)
		r.add(burst(tg, 8))
		finish(t, tg, r)
		return r
	})
}
