package rstpool

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLearnFloor is the shortest idle gap a Transport takes as evidence
// of a hop's idle timeout. No common hop reaps connections idle for less
// than a second, so a connection found dead after a shorter gap is taken as
// chance (a restart, a crash).
const DefaultLearnFloor = time.Second

// How a Transport learns a destination's idle timeout from evidence.
const (
	// learnAgree is how many idle deaths must agree before a limit is
	// learned: one is an anecdote.
	learnAgree = 2

	// learnBlip is how close to a failure that is no evidence (a new
	// connection failing, one failing mid-exchange or after a short quiet
	// spell) an idle death is taken as part of it: a blip of the path
	// kills idle and busy connections and new ones alike, a hop's idle
	// timer only the idle ones.
	learnBlip = 500 * time.Millisecond

	// learnExplore is how often one idempotent request may reuse a
	// connection idle beyond the learned limit, to see whether the hop
	// still reaps it: if it answers, the limit goes; if not, its retry
	// costs nothing. Non-idempotent work never explores.
	learnExplore = time.Minute

	// learnForget is how long a success after a long idle gap keeps
	// refuting shorter failures: a hop reconfigured since is learned anew.
	learnForget = 10 * time.Minute

	// maxLearned bounds the destinations a Transport keeps evidence for.
	maxLearned = 1024
)

// A learner keeps, per destination (host:port), the evidence of an idle
// timeout nobody declared, and the limit it supports: three quarters of the
// shortest idle gap after which reused connections died, learned only when
// learnAgree such deaths agree, none came with a blip's signature, and no
// connection answered after a gap as long.
type learner struct {
	floor    time.Duration // shortest gap taken as evidence; negative: learning off
	base     time.Duration // the Dialer's idle limit; <= 0: none
	observer Observer
	changes  atomic.Int64 // limits set or dropped

	mu      sync.Mutex
	ev      map[string]*evidence
	any     atomic.Bool  // a limit is in force somewhere
	pending atomic.Int64 // idle deaths not yet clear of a blip, everywhere
}

// evidence is what a Transport saw of one destination.
type evidence struct {
	okGap    time.Duration // the longest idle gap after which a reused connection answered
	okAt     int64         // when
	noiseAt  int64         // the latest failure that is no evidence; 0: none
	pending  []death       // idle deaths not yet clear of a blip
	agreed   int           // idle deaths clear of any blip and of okGap
	shortest time.Duration // the shortest gap among them
	limit    time.Duration // the learned limit; zero: none
	explored int64         // when an idempotent request last went past the limit
}

// A death is a reused connection that died after an idle gap.
type death struct {
	gap time.Duration
	at  int64
}

func (l *learner) init(floor, base time.Duration, o Observer) {
	l.floor, l.base, l.observer = floor, base, o
}

// limitFor returns the idle limit learned for the destination, zero when
// none, and whether an idempotent request may explore past it now. It
// spends nothing (not even the destination's name) while nothing was
// learned.
func (l *learner) limitFor(dst *destName, idempotent bool) (limit, explore time.Duration) {
	if !l.any.Load() && l.pending.Load() == 0 {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.ev[dst.String()]
	if e != nil && len(e.pending) > 0 {
		l.settle(dst.String(), e, mono())
	}
	if e == nil || e.limit == 0 {
		return 0, 0
	}
	if idempotent && mono()-e.explored >= int64(learnExplore) {
		return e.limit, e.shortest
	}
	return e.limit, 0
}

// explored records that a request went past the limit to see.
func (l *learner) explored(dst *destName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.ev[dst.String()]; e != nil {
		e.explored = mono()
	}
}

// answered records that a connection reused after an idle gap answered.
// A gap clearly longer than the shortest death (by an eighth: the client
// and the hop do not start their clocks at the same moment) refutes the
// deaths, and the limit.
func (l *learner) answered(dst *destName, gap time.Duration) {
	if l.floor < 0 || gap < l.floor {
		return
	}
	l.update(dst, func(e *evidence, now int64) {
		if gap > e.okGap || now-e.okAt > int64(learnForget) {
			e.okGap, e.okAt = gap, now
		}
		if e.agreed > 0 && gap >= e.shortest+e.shortest/8 {
			e.agreed, e.shortest = 0, 0 // the deaths were not the hop's idle timer
		}
	})
}

// died records a reused connection that gave nothing back after an idle
// gap.
func (l *learner) died(dst *destName, gap time.Duration) {
	if l.floor < 0 || gap < l.floor {
		l.noise(dst)
		return
	}
	l.update(dst, func(e *evidence, now int64) {
		switch {
		case e.noiseAt != 0 && now-e.noiseAt <= int64(learnBlip):
			// part of a blip
		case gap+gap/8 <= e.okGap && now-e.okAt <= int64(learnForget):
			// refuted: a connection answered after a clearly longer gap
		case len(e.pending) < learnAgree*4:
			e.pending = append(e.pending, death{gap: gap, at: now})
			l.pending.Add(1)
		}
	})
}

// noise records a failure that is no evidence of an idle timeout: idle
// deaths around it were part of the same blip.
func (l *learner) noise(dst *destName) {
	if l.floor < 0 {
		return
	}
	l.update(dst, func(e *evidence, now int64) {
		e.noiseAt = now
		l.pending.Add(-int64(len(e.pending)))
		e.pending = e.pending[:0]
	})
}

// update runs f on dst's evidence, then accepts the idle deaths clear of
// any blip and learns, raises or drops the limit they support.
func (l *learner) update(dst *destName, f func(e *evidence, now int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := dst.String()
	e := l.ev[name]
	if e == nil {
		if len(l.ev) >= maxLearned {
			return
		}
		if l.ev == nil {
			l.ev = make(map[string]*evidence)
		}
		e = &evidence{}
		l.ev[name] = e
	}
	now := mono()
	f(e, now)
	l.settle(name, e, now)
}

// settle accepts the pending deaths that no blip came near, and sets the
// limit from what agrees.
func (l *learner) settle(name string, e *evidence, now int64) {
	kept := e.pending[:0]
	for _, d := range e.pending {
		if now-d.at <= int64(learnBlip) {
			kept = append(kept, d)
			continue
		}
		if e.agreed == 0 || d.gap < e.shortest {
			e.shortest = d.gap
		}
		e.agreed++
	}
	l.pending.Add(int64(len(kept) - len(e.pending)))
	e.pending = kept
	limit := time.Duration(0)
	if e.agreed >= learnAgree {
		limit = e.shortest - e.shortest/4 // the margin of Chain.ClientIdleTimeout
	}
	if l.base > 0 && limit >= l.base {
		limit = 0 // the Dialer's own limit is lower already
	}
	if limit == e.limit {
		return
	}
	e.limit = limit
	if limit > 0 {
		l.any.Store(true)
		e.explored = now
	}
	l.changes.Add(1)
	l.observer.emit(Event{Kind: EventLearned, Source: "transport", Addr: name, Duration: limit})
}

func (l *learner) snapshot() map[string]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]time.Duration)
	for k, e := range l.ev {
		if e.limit > 0 {
			m[k] = e.limit
		}
	}
	return m
}
