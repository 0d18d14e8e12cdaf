// Package drive runs a real rstpool Transport and Pool into the events the
// metrics modules count (retries, retries denied, failures surfaced, a
// learned idle limit, retirements, dead connections caught) against
// loopback servers that reset connections with SetLinger(0), and a closed
// port for a refusal. It is test support for rstprom and rstotel.
package drive

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
)

// A Run is what Start built and what its Observer saw.
type Run struct {
	Dialer    *rstpool.Dialer
	Transport *rstpool.Transport // retries within the default budget
	Denying   *rstpool.Transport // a retry budget of none: retries are denied
	Pool      *rstpool.Pool
	Stingy    *rstpool.Pool // a retry budget of none

	HTTPAddr, LineAddr, ClosedAddr string

	mu     sync.Mutex
	events []rstpool.Event
}

// Events returns the events seen so far, in order.
func (r *Run) Events() []rstpool.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rstpool.Event(nil), r.events...)
}

func (r *Run) record(e rstpool.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Start builds the servers, the Dialer (observed by o and by the Run),
// the Transports and the Pools; t's cleanup closes them all.
func Start(t testing.TB, o rstpool.Observer) *Run {
	t.Helper()
	r := &Run{HTTPAddr: serveHTTP(t), LineAddr: ServeLines(t), ClosedAddr: closedPort(t)}
	r.Dialer = &rstpool.Dialer{RefusedRetry: -1, Observer: func(e rstpool.Event) {
		r.record(e)
		o(e)
	}}
	r.Transport = &rstpool.Transport{Dialer: r.Dialer, LearnFloor: 10 * time.Millisecond}
	r.Denying = &rstpool.Transport{Dialer: r.Dialer, RetryBudget: rstpool.RetryBudget{Ratio: -1}}
	r.Pool = r.newPool(t, rstpool.RetryBudget{})
	r.Stingy = r.newPool(t, rstpool.RetryBudget{Ratio: -1})
	t.Cleanup(func() {
		r.Transport.CloseIdleConnections()
		r.Denying.CloseIdleConnections()
	})
	return r
}

// PoolIdle is the pools' idle limit.
const PoolIdle = 150 * time.Millisecond

func (r *Run) newPool(t testing.TB, b rstpool.RetryBudget) *rstpool.Pool {
	t.Helper()
	p, err := rstpool.NewPool(rstpool.PoolConfig{Addr: r.LineAddr, Dialer: r.Dialer, MaxSize: 1,
		IdleTimeout: PoolIdle, UpkeepInterval: -1, RetryBudget: b})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// Drive runs every step once; each step says what it expects of rstpool,
// and Drive fails t when a step ends otherwise.
func (r *Run) Drive(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.driveTransports(ctx, t)
	r.drivePools(ctx, t)
	r.settle(t)
}

// settle waits until the pools have closed the connections Do destroyed
// (puddle closes them in the background), so that their stats hold still.
func (r *Run) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range []*rstpool.Pool{r.Pool, r.Stingy} {
		for p.Stats().AcquiredConns != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("a pool still holds %d connections after 5 s", p.Stats().AcquiredConns)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Expected is what Drive makes the Transports and Pools report, by source
// and kind (the Dialer's own events aside).
var Expected = map[string]int{
	"transport learned":      1,
	"transport retired":      1,
	"transport retry":        1,
	"transport surfaced":     4,
	"transport retry-denied": 1,
	"pool caught-dead":       1,
	"pool retry":             1,
	"pool surfaced":          2,
	"pool retired":           1,
	"pool retry-denied":      1,
}
