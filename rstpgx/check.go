package rstpgx

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rstpool/rstpool"
)

// checker is the checkout check Configure installs.
type checker struct {
	idle, life time.Duration // zero: none
}

// prepare reports whether a pooled connection may be handed out: false
// with a nil error makes pgxpool destroy it and take another.
func (ch *checker) prepare(ctx context.Context, c *pgx.Conn) (bool, error) {
	rc := Tracked(c)
	if rc == nil {
		return true, nil
	}
	rc.MarkUsed()
	switch verdict(rc, ch.idle, ch.life) {
	case retire:
		return false, nil
	case keep:
		return true, nil
	}
	if err := c.Ping(ctx); err != nil {
		return false, ctx.Err() // a canceled acquire fails; a dead conn is replaced
	}
	return true, nil
}

type decision uint8

const (
	keep decision = iota
	retire
	ping
)

// verdict decides from the connection's history and a peek, cheapest
// first. The limits are brought forward by a small margin so that the
// query about to run does not cross them.
func verdict(rc *rstpool.Conn, idle, life time.Duration) decision {
	st := rc.Stats()
	switch {
	case st.PeerClosed:
		return retire
	case life > 0 && st.Age >= life-margin(life):
		return retire
	case idle > 0 && st.Idle >= idle-margin(idle):
		return retire
	}
	switch h, _ := rc.Check(); h {
	case rstpool.HealthClosed, rstpool.HealthReset:
		return retire
	case rstpool.HealthAlive:
		if st.Idle < rstpool.PingAfterIdle {
			return keep
		}
	}
	return ping
}

// margin is 1 % of a limit, at most a second.
func margin(limit time.Duration) time.Duration { return min(limit/100, time.Second) }
