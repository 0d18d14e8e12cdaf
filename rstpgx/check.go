package rstpgx

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/handout"
	"github.com/rstpool/rstpool/internal/rule"
)

// checker is the checkout Configure installs: rstpool's checkout rule,
// with pgx's Ping where a peek cannot know.
type checker struct {
	lim      rule.Limits
	observer rstpool.Observer
}

// newChecker applies d's idle limit and lifetime (zero: none) at checkout,
// brought forward by a small margin so that the query about to run does
// not cross them.
func newChecker(idle, life time.Duration, o rstpool.Observer) *checker {
	return &checker{observer: o, lim: rule.Limits{
		IdleLimit: idle - margin(idle), Lifetime: life - margin(life),
		PingAfter: rstpool.DefaultPingAfter, CanPing: true, PingReadsPending: true,
	}}
}

// margin is 1 % of a limit, at most a second.
func margin(limit time.Duration) time.Duration { return min(limit/100, time.Second) }

// prepare reports whether a pooled connection may be handed out: false
// with a nil error makes pgxpool destroy it and take another. A connection
// handed out is marked as the caller's checkout, after any ping.
func (ch *checker) prepare(ctx context.Context, c *pgx.Conn) (bool, error) {
	rc := Tracked(c)
	if rc == nil {
		return true, nil
	}
	st := rc.Stats()
	facts := rule.Conn{Idle: st.Idle, Age: st.Age, PeerClosed: st.PeerClosed, Peekable: true}
	switch v := rule.Checkout(facts, ch.lim, func() rule.Health { return health(rc) }); {
	case v.Retires():
		ch.report(v.Dead(), v.String(), st.Idle, rc)
		return false, nil
	case v == rule.Ping:
		if err := c.Ping(ctx); err != nil {
			ch.report(true, "ping-failed", st.Idle, rc)
			return false, ctx.Err() // a canceled acquire fails; a dead conn is replaced
		}
	}
	handout.Checkout(ctx, c.PgConn().Conn())
	return true, nil
}

// health peeks at rc for the checkout rule.
func health(rc *rstpool.Conn) rule.Health {
	h, err := rc.Check()
	return rule.Peeked(rule.Health(h), err)
}

func (ch *checker) report(dead bool, reason string, idle time.Duration, rc *rstpool.Conn) {
	if ch.observer == nil {
		return
	}
	kind := rstpool.EventRetired
	if dead {
		kind = rstpool.EventCaughtDead
	}
	ch.observer(rstpool.Event{Kind: kind, Source: "pgx", Addr: rc.RemoteAddr().String(), Reason: reason, Duration: idle})
}
