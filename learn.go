package rstpool

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLearnFloor is the smallest idle limit a Transport learns for a
// destination. No common hop reaps connections idle for less than a
// second, so a shorter gap before a failure is taken as chance (a restart,
// a crash), not as a hop's timeout; and a floor keeps one bad observation
// from turning connection reuse off.
const DefaultLearnFloor = time.Second

// A learner keeps, per destination (host:port), an idle limit below the
// shortest idle gap after which a reused connection to it was found dead:
// the hop timeout nobody declared.
type learner struct {
	floor time.Duration // smallest limit learned; negative: learning off
	base  time.Duration // the Dialer's idle limit; <= 0: none

	mu     sync.RWMutex
	limits map[string]time.Duration
	any    atomic.Bool // limits has an entry
}

// prepare tells the attempt the idle limit learned for r's destination.
func (l *learner) prepare(a *attempt, r *http.Request) {
	if !l.any.Load() {
		return
	}
	a.learnedIdle, _ = l.limit(destination(r))
}

// applyLearned lowers the idle limit of the connection net/http handed
// out to the limit learned for its destination. A pooled connection that
// already sat idle that long then fails its first Write with nothing
// written, and the request moves to another connection (net/http's own
// retry for HTTP/1, the Transport's for HTTP/2); HTTP/2 connections are
// idle only when no stream uses them.
func (a *attempt) applyLearned() {
	if a.learnedIdle <= 0 {
		return
	}
	if cur := a.conn.IdleLimit(); cur == 0 || a.learnedIdle < cur {
		a.conn.SetIdleLimit(a.learnedIdle)
	}
}

// limit returns the learned idle limit for addr, if one was learned.
func (l *learner) limit(addr string) (time.Duration, bool) {
	l.mu.RLock()
	d, ok := l.limits[addr]
	l.mu.RUnlock()
	return d, ok
}

// observe records that a reused connection to addr died after sitting idle
// for gap, and reports whether that lowered addr's idle limit. A gap below
// the floor is chance; a gap at or above the current limit means the
// client's own limit retired the connection.
func (l *learner) observe(addr string, gap time.Duration) bool {
	if l.floor < 0 || gap < l.floor {
		return false
	}
	limit := max(gap-gap/4, l.floor) // the margin of Chain.ClientIdleTimeout
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.limits[addr]
	if !ok {
		cur = l.base
	}
	if cur > 0 && (gap >= cur || limit >= cur) {
		return false
	}
	if l.limits == nil {
		l.limits = make(map[string]time.Duration)
	}
	l.limits[addr] = limit
	l.any.Store(true)
	return true
}

func (l *learner) snapshot() map[string]time.Duration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := make(map[string]time.Duration, len(l.limits))
	for k, v := range l.limits {
		m[k] = v
	}
	return m
}

// noteFailure learns from an attempt whose connection failed after an
// idle gap (the cause-1 pattern): its own connection, when err says so,
// and the connection before it when net/http retried internally.
func (t *Transport) noteFailure(r *http.Request, a *attempt, err error) {
	if a.conns > 1 {
		t.noteRetried(r, a)
	}
	if err == nil || !a.reused() || !a.info.WasIdle {
		return
	}
	if ce, ok := a.wrap(err).(*ConnError); ok && ce.Cause() == CauseIdleReaped {
		t.observe(r, a.info.IdleTime)
	}
}

// noteRetried learns from the connection net/http gave up before the
// last one: net/http only moves a request to another connection when the
// first failed, so a reused idle one that failed died while idle, unless
// the client's own lifetime retired it.
func (t *Transport) noteRetried(r *http.Request, a *attempt) {
	p := a.prev
	if !p.Reused || !p.WasIdle {
		return
	}
	if c := a.prevConn; c != nil && c.pol.maxLifetime > 0 && time.Duration(mono()-c.created) >= c.pol.maxLifetime {
		return
	}
	t.observe(r, p.IdleTime)
}

func (t *Transport) observe(r *http.Request, gap time.Duration) {
	if t.learn.observe(destination(r), gap) {
		t.stats.learned.Add(1)
	}
}

// destination is the host:port net/http dials for r without a proxy.
func destination(r *http.Request) string {
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = "80"
		if r.URL.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port)
}
