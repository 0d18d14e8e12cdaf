package rstpgx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rstpool/rstpool"
)

// SQLSTATE 57P03, cannot_connect_now: "the database system is starting up"
// (or shutting down, or in recovery not yet accepting connections).
const sqlStateCannotConnectNow = "57P03"

// maxStartupRetries bounds the fallback list whatever the budget.
const maxStartupRetries = 24

// errStartupNotRetried fills the attempts a connect did not need: pgx
// reports one line for each fallback it tried.
var errStartupNotRetried = errors.New("rstpgx: not retried (the previous attempt did not fail with 57P03 or an unanswered close)")

// startupRetry makes a connect that PostgreSQL refused with 57P03, or closed
// before it answered a byte (a postmaster shutting down resets connections
// it accepted but never served), try again after a jittered backoff, within
// budget. pgconn tries Config.Fallbacks in
// order after a non-fatal failure (57P03 is not one of the codes that stop
// it), so the hook appends copies of the hosts to the fallbacks of the
// per-connect copy of the config, and a per-connect dial function that
// waits before a copy, or skips it when the attempt before it did not end
// in 57P03. A dial that ends in a refusal is not repeated here: the
// Dialer already retried it within the same budget.
type startupRetry struct {
	d       *rstpool.Dialer
	budget  time.Duration
	backoff rstpool.Backoff
	copies  int
}

// newStartupRetry returns the hook for d's RefusedRetry budget and
// backoff, the Dialer's own for refused connects, or nil when d never
// retries or its settings cannot work (every dial reports them).
func newStartupRetry(d *rstpool.Dialer) *startupRetry {
	budget, b, err := d.Refused()
	if err != nil || budget <= 0 {
		return nil
	}
	return &startupRetry{d: d, budget: budget, backoff: b, copies: retriesWithin(budget, b)}
}

// retriesWithin bounds the copies of the hosts a connect may try within
// budget: one per base step of the backoff, at most maxStartupRetries.
func retriesWithin(budget time.Duration, b rstpool.Backoff) int {
	return min(int(budget/max(b.Base, time.Millisecond)), maxStartupRetries)
}

// beforeConnect is a BeforeConnect hook for pgxpool and pgx's stdlib; cc is
// the copy of the config that one connect uses.
func (s *startupRetry) beforeConnect(_ context.Context, cc *pgx.ConnConfig) error {
	a := &startupAttempts{
		dial:      cc.DialFunc,
		lookup:    cc.LookupFunc,
		onPgError: cc.OnPgError,
		after:     cc.AfterConnect,
		hosts:     1 + len(cc.Fallbacks),
		deadline:  time.Now().Add(s.budget),
		backoff:   s.backoff,
	}
	primary := &pgconn.FallbackConfig{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}
	fallbacks := slices.Clone(cc.Fallbacks) // stdlib's copy shares the slice
	copies := s.copies
	if s.d.Down("tcp", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))) {
		copies = 0 // the server is down, not starting up: one line per real attempt
	}
	for range copies {
		fallbacks = append(fallbacks, primary)
	}
	cc.Fallbacks = fallbacks
	cc.DialFunc, cc.LookupFunc, cc.OnPgError = a.dialFunc, a.lookupFunc, a.pgError
	cc.AfterConnect = a.afterConnect
	return nil
}

// startupAttempts is the state of one connect.
type startupAttempts struct {
	dial      pgconn.DialFunc
	lookup    pgconn.LookupFunc
	onPgError pgconn.PgErrorHandler
	after     pgconn.AfterConnectFunc
	hosts     int // configured hosts: the primary and the original fallbacks
	deadline  time.Time

	mu         sync.Mutex
	lookups    int
	primaryIPs []string
	primaryErr error
	originals  int // addresses the configured hosts resolved to
	dials      int
	startingUp bool     // the last attempt ended in 57P03
	connected  bool     // later dials (cancel requests) go straight through
	last       net.Conn // the connection the last attempt dialed
	backoff    rstpool.Backoff
	waits      int // backoff waits so far
}

// lookupFunc resolves the configured hosts as pgx would and counts their
// addresses; the copies reuse the primary's answer.
func (a *startupAttempts) lookupFunc(ctx context.Context, host string) ([]string, error) {
	a.mu.Lock()
	i := a.lookups
	a.lookups++
	a.mu.Unlock()
	if i >= a.hosts {
		return a.primaryIPs, a.primaryErr
	}
	ips, err := a.lookup(ctx, host)
	a.mu.Lock()
	defer a.mu.Unlock()
	if i == 0 {
		a.primaryIPs, a.primaryErr = ips, err
	}
	if err == nil {
		a.originals += len(ips)
	}
	return ips, err
}

// pgError notes a 57P03 and leaves the decision to the configured handler.
func (a *startupAttempts) pgError(c *pgconn.PgConn, e *pgconn.PgError) bool {
	a.mu.Lock()
	a.startingUp = e.Code == sqlStateCannotConnectNow
	a.mu.Unlock()
	if a.onPgError == nil {
		return true
	}
	return a.onPgError(c, e)
}

// afterConnect marks the connect done, then runs the configured hook.
func (a *startupAttempts) afterConnect(ctx context.Context, c *pgconn.PgConn) error {
	a.mu.Lock()
	a.connected = true
	a.mu.Unlock()
	if a.after == nil {
		return nil
	}
	return a.after(ctx, c)
}

// dialFunc dials the configured addresses as they come and a copy only
// after a 57P03 or an unanswered close, once a jittered backoff has passed within the budget.
func (a *startupAttempts) dialFunc(ctx context.Context, network, addr string) (net.Conn, error) {
	pause, err := a.next()
	if err != nil {
		return nil, err
	}
	if pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rstpgx: waiting for the server to start up: %w", ctx.Err())
		case <-t.C:
		}
	}
	c, err := a.dial(ctx, network, addr)
	a.mu.Lock()
	a.last = c
	a.mu.Unlock()
	return c, err
}

// unanswered reports whether the server closed c before sending a byte, as
// a postmaster that shuts down does to connections it accepted but never
// served. Only a tracked connection can tell.
func unanswered(c net.Conn) bool {
	rc := rstpool.Tracked(c)
	return rc != nil && rc.Stats().BytesRead == 0
}

// next decides the attempt about to be dialed: go at once, wait, or skip.
func (a *startupAttempts) next() (time.Duration, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, startingUp := a.dials, a.startingUp || (a.last != nil && unanswered(a.last))
	a.dials++
	a.startingUp, a.last = false, nil
	if a.connected {
		return 0, nil
	}
	if !startingUp {
		if i < a.originals {
			return 0, nil
		}
		return 0, errStartupNotRetried
	}
	pause := a.backoff.Next(a.waits)
	a.waits++
	if time.Now().Add(pause).After(a.deadline) {
		return 0, errStartupNotRetried
	}
	return pause, nil
}
