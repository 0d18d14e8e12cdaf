package dbprobe

import (
	"fmt"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
)

// Advice is what a client of the target should set after a probe that saw
// its sessions end.
type Advice struct {
	// Hop is the hop that ended the sessions, with the idle timeout to
	// declare: the longest idle a session was seen to survive below the
	// shortest end, rounded down.
	Hop rstpool.Hop
	// Declare is Hop as Go source.
	Declare string
	// Idle is the client's idle limit that follows,
	// rstpool.Chain{Hop}.ClientIdleTimeout().
	Idle time.Duration
	// Settings say where the idle limit goes, one line per client.
	Settings []string
}

// Advise returns the advice that follows from r, or false when no session
// ended (nothing to declare).
func (t *Target) Advise(r diag.ProbeResult) (Advice, bool) {
	if r.End == diag.EndNone {
		return Advice{}, false
	}
	idle := roundDown(r.AliveAt)
	if idle <= 0 {
		idle = roundDown(r.Estimate)
	}
	var a Advice
	switch {
	case r.End == diag.EndSilent:
		// Something between forgot the flow without a word: a NAT, a
		// firewall, a balancer. TCP keepalive keeps such a hop fresh.
		a.Hop = rstpool.Hop{Name: "middlebox", IdleTimeout: idle, Middlebox: true}
		a.Declare = fmt.Sprintf("rstpool.Hop{Name: %q, IdleTimeout: %s, Middlebox: true}", a.Hop.Name, GoDuration(idle))
	case t.Kind == Postgres && strings.Contains(r.Farewell, "client_idle_timeout"):
		a.Hop = rstpool.MustHop("pgbouncer-tx").WithIdle(idle)
		a.Declare = fmt.Sprintf("rstpool.MustHop(%q).WithIdle(%s)", "pgbouncer-tx", GoDuration(idle))
	case t.Kind == MySQL:
		a.Hop = rstpool.MustHop("mysql").WithIdle(idle)
		a.Declare = fmt.Sprintf("rstpool.MustHop(%q).WithIdle(%s)", "mysql", GoDuration(idle))
	default:
		a.Hop = rstpool.Hop{Name: t.Kind, IdleTimeout: idle}
		a.Declare = fmt.Sprintf("rstpool.Hop{Name: %q, IdleTimeout: %s}", t.Kind, GoDuration(idle))
	}
	a.Idle = rstpool.Chain{a.Hop}.ClientIdleTimeout()
	a.Settings = t.settings(a.Idle)
	return a, true
}

// settings says where the idle limit goes for the target's clients.
func (t *Target) settings(idle time.Duration) []string {
	d := GoDuration(idle)
	switch t.Kind {
	case Postgres:
		return []string{
			"pgxpool:      rstpgx.Configure(cfg, d) sets cfg.MaxConnIdleTime to " + idle.String() + " (alone: cfg.MaxConnIdleTime = " + d + ")",
			"database/sql: db := rstpgx.OpenDB(*cc, d); db.SetConnMaxIdleTime(" + d + ")",
		}
	case MySQL:
		return []string{
			"database/sql: db := sql.OpenDB(rstpool.WrapConnector(conn, d)); db.SetConnMaxIdleTime(" + d + ")",
		}
	}
	return []string{
		"go-redis:     redis.NewClient(&redis.Options{Dialer: d.DialContext, ConnMaxIdleTime: " + d + "})",
	}
}

// roundDown rounds a measured duration down to a figure worth declaring:
// to 100ms below 10s, to the second below 10m, to the minute above.
func roundDown(d time.Duration) time.Duration {
	switch {
	case d < 10*time.Second:
		return d.Truncate(100 * time.Millisecond)
	case d < 10*time.Minute:
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Minute)
}

// GoDuration writes d as a Go expression: 1500 * time.Millisecond,
// 2 * time.Second, 8 * time.Hour.
func GoDuration(d time.Duration) string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "time.Hour"}, {time.Minute, "time.Minute"}, {time.Second, "time.Second"}, {time.Millisecond, "time.Millisecond"}} {
		if d >= u.unit && d%u.unit == 0 {
			if d == u.unit {
				return u.name
			}
			return fmt.Sprintf("%d * %s", d/u.unit, u.name)
		}
	}
	return fmt.Sprintf("time.Duration(%d)", d)
}
