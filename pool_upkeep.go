package rstpool

import (
	"context"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/rstpool/rstpool/internal/rule"
)

// startUpkeep starts the pool's one background goroutine, unless upkeep is
// off.
func (p *Pool) startUpkeep() {
	if p.s.upkeepInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopUpkeep, p.upkeepDone = cancel, make(chan struct{})
	go p.upkeepLoop(ctx)
}

// upkeepLoop runs a round at once (to open MinIdle), then every
// UpkeepInterval until Close.
func (p *Pool) upkeepLoop(ctx context.Context) {
	defer close(p.upkeepDone)
	t := time.NewTicker(p.s.upkeepInterval)
	defer t.Stop()
	var r refill
	for {
		p.upkeepRound(ctx, &r)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// upkeepRound checks every idle connection once, as pgxpool does: it takes
// them all (AcquireAllIdle), closes those the checkout rule retires (a peek
// each), hands the others back untouched (ReleaseUnused) but for at most
// UpkeepPings due a ping, pings those, then refills MinIdle. Its cost is a
// peek per idle connection plus a bounded number of pings and dials.
func (p *Pool) upkeepRound(ctx context.Context, r *refill) {
	p.stats.upkeepRounds.Add(1)
	now := mono()
	var due []*puddle.Resource[*pconn]
	for _, res := range p.pp.AcquireAllIdle() {
		switch v := p.verdict(res.Value(), now, p.s.upkeepLimits); {
		case v.Retires():
			p.retire(res, retireCause(v), now)
		case v == rule.Ping && len(due) < p.s.upkeepPings:
			due = append(due, res)
		default:
			res.ReleaseUnused()
		}
	}
	for _, res := range due {
		if err := p.ping(ctx, res.Value()); err != nil {
			p.retire(res, causePingFailed, mono())
			continue
		}
		res.ReleaseUnused()
	}
	p.refillMinIdle(ctx, r)
}

// refill paces the dials that keep MinIdle open: after a failed dial it
// waits, doubling the pause up to maxRefillBackoff, so that a server that
// is down or restarting is not hammered.
type refill struct {
	notBefore time.Time
	backoff   time.Duration
}

// maxRefillDials bounds the dials of one upkeep round.
const maxRefillDials = 4

func (p *Pool) refillMinIdle(ctx context.Context, r *refill) {
	if p.s.minIdle == 0 || time.Now().Before(r.notBefore) {
		return
	}
	st := p.pp.Stat()
	need := min(p.s.minIdle-st.IdleResources()-st.ConstructingResources(), p.s.maxSize-st.TotalResources(), maxRefillDials)
	for range need {
		if err := p.dialIdle(ctx); err != nil {
			r.backoff = min(max(2*r.backoff, p.s.upkeepInterval), maxRefillBackoff)
			r.notBefore = time.Now().Add(r.backoff)
			return
		}
		r.backoff = 0
	}
}

// dialIdle opens one connection straight into the idle pool, giving the
// dial at most the upkeep interval (and at least 100 ms) so that a round
// stays short.
func (p *Pool) dialIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(p.s.upkeepInterval, 100*time.Millisecond))
	defer cancel()
	return p.pp.CreateResource(ctx)
}
