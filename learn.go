package rstpool

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLearnFloor is the shortest idle gap a Transport takes as evidence
// of a hop's idle timeout. No common hop reaps connections idle for less
// than a second, so a connection found dead after a shorter gap is taken as
// chance (a restart, a crash), and one bad observation cannot turn
// connection reuse off.
const DefaultLearnFloor = time.Second

// learnRecoverAfter is how long a learned limit holds without new evidence
// before it is doubled, towards the Dialer's own limit: a hop that was
// fixed, or evidence that was chance, stops costing reuse. A hop that
// still reaps gives new evidence within one idle gap.
const learnRecoverAfter = time.Minute

// A learner keeps, per destination (host:port), an idle limit below the
// shortest idle gap after which a reused connection to it was found dead
// while idle: the hop timeout nobody declared.
type learner struct {
	floor    time.Duration // shortest gap taken as evidence; negative: learning off
	base     time.Duration // the Dialer's idle limit; <= 0: none
	observer Observer
	learned  atomic.Int64 // limits set, lowered or raised

	mu     sync.Mutex
	limits map[string]*learned
	any    atomic.Bool // limits has an entry
}

type learned struct {
	limit time.Duration
	at    int64 // mono time of the last evidence, or of the last raise
}

func (l *learner) init(floor, base time.Duration, o Observer) {
	l.floor, l.base, l.observer = floor, base, o
}

// limitFor returns the idle limit learned for r's destination; it spends
// nothing (not even the address string) while nothing was learned.
func (l *learner) limitFor(r *http.Request) time.Duration {
	if !l.any.Load() {
		return 0
	}
	return l.limit(requestAddr(r))
}

// limit returns the idle limit learned for addr, zero when none. A limit
// without new evidence for learnRecoverAfter is doubled, and dropped once
// it reaches the Dialer's own.
func (l *learner) limit(addr string) time.Duration {
	if !l.any.Load() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.limits[addr]
	if e == nil {
		return 0
	}
	if now := mono(); time.Duration(now-e.at) >= max(learnRecoverAfter, 10*e.limit) {
		e.limit, e.at = 2*e.limit, now
		if l.base > 0 && e.limit >= l.base {
			delete(l.limits, addr)
			e.limit = 0
		}
		l.report(addr, e.limit)
	}
	return e.limit
}

// observe records that a reused connection to addr died while idle after a
// quiet gap, and reports whether that lowered addr's idle limit. A gap
// below the floor is taken as chance.
func (l *learner) observe(addr string, gap time.Duration) bool {
	if l.floor < 0 || gap < l.floor {
		return false
	}
	limit := gap - gap/4 // the margin of Chain.ClientIdleTimeout
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.limits[addr]
	switch {
	case e != nil && limit >= e.limit:
		e.at = mono() // the same evidence again: the limit holds
		return false
	case e == nil && l.base > 0 && limit >= l.base:
		return false
	case e == nil:
		if l.limits == nil {
			l.limits = make(map[string]*learned)
		}
		e = &learned{}
		l.limits[addr] = e
		l.any.Store(true)
	}
	e.limit, e.at = limit, mono()
	l.report(addr, limit)
	return true
}

func (l *learner) report(addr string, limit time.Duration) {
	l.learned.Add(1)
	l.observer.emit(Event{Kind: EventLearned, Source: "transport", Addr: addr, Duration: limit})
}

func (l *learner) snapshot() map[string]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]time.Duration, len(l.limits))
	for k, v := range l.limits {
		m[k] = v.limit
	}
	return m
}

// noteFailure learns from connections found dead while idle: the
// attempt's own, when err carries that evidence, and the one net/http gave
// up before it, whose first failure the connection remembers.
func (t *Transport) noteFailure(r *http.Request, a *attempt, err error) {
	if c := a.prevConn; a.conns > 1 && c != nil {
		if f := c.failure.Load(); f != nil {
			t.learnFrom(r, f)
		}
	}
	if err == nil {
		return
	}
	var ce *ConnError
	if errors.As(err, &ce) { // RoundTrip wrapped it
		t.learnFrom(r, ce)
	}
}

// learnFrom takes e as evidence when it shows a reused connection that
// died while idle: found by the check before a write, or failed at the
// first byte after a quiet spell.
func (t *Transport) learnFrom(r *http.Request, e *ConnError) {
	if e.Reused && e.Cause() == CauseIdleReaped {
		t.learn.observe(requestAddr(r), e.Idle)
	}
}

// requestAddr is the host:port net/http dials for r without a proxy.
func requestAddr(r *http.Request) string {
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = "80"
		if r.URL.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port)
}
