package rstpool

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBadSettingsNameTheField(t *testing.T) {
	alb, _ := LookupHop("aws-alb")
	cases := []struct {
		d     Dialer
		field string
	}{
		{Dialer{KeepAliveIdle: 500 * time.Millisecond}, "Dialer.KeepAliveIdle"},
		{Dialer{KeepAliveIdle: 1500 * time.Millisecond}, "Dialer.KeepAliveIdle"},
		{Dialer{KeepAliveIdle: 10 * time.Hour}, "Dialer.KeepAliveIdle"},
		{Dialer{KeepAliveInterval: -time.Second}, "Dialer.KeepAliveInterval"},
		{Dialer{KeepAliveCount: -1}, "Dialer.KeepAliveCount"},
		{Dialer{KeepAliveCount: 200}, "Dialer.KeepAliveCount"},
		{Dialer{UserTimeout: 10 * time.Second}, "Dialer.UserTimeout"}, // 30s idle + 10s interval
		{Dialer{UserTimeout: 40 * time.Second}, "Dialer.UserTimeout"}, // equal: one lost probe kills
		{Dialer{UserTimeout: 1500 * time.Microsecond}, "Dialer.UserTimeout"},
		{Dialer{Chain: Chain{alb}, IdleTimeout: 90 * time.Second}, "Dialer.IdleTimeout"},
		{Dialer{Chain: Chain{{Name: "envoy", MaxLifetime: time.Minute}}, MaxLifetime: time.Hour}, "Dialer.MaxLifetime"},
		{Dialer{Chain: Chain{{Name: "envoy", MaxLifetime: time.Minute}}, MaxLifetime: -1}, "Dialer.MaxLifetime"},
	}
	for _, tc := range cases {
		_, err := tc.d.DialContext(context.Background(), "tcp", "127.0.0.1:1")
		var ce *ConfigError
		require.ErrorAs(t, err, &ce, "%+v", tc.d)
		require.Equal(t, tc.field, ce.Field, "%v", err)
		require.Contains(t, err.Error(), tc.field)
	}
}

func TestSettingsDefaults(t *testing.T) {
	var d Dialer
	s, err := d.settings()
	require.NoError(t, err)
	require.Equal(t, DefaultIdleTimeout, s.idleLimit)
	require.Equal(t, time.Duration(0), s.maxLifetime)
	require.Equal(t, DefaultPeekAfter, s.peekAfter)
	require.True(t, s.peek)
	require.Equal(t, DefaultDialTimeout, s.net.Timeout)
	require.Equal(t, DefaultRefusedRetry, s.refusedRetry)

	alb, _ := LookupHop("aws-alb")
	d = Dialer{Chain: Chain{{Name: "envoy", IdleTimeout: time.Hour, MaxLifetime: 10 * time.Minute}, alb}}
	s, err = d.settings()
	require.NoError(t, err)
	require.Equal(t, 45*time.Second, s.idleLimit, "three quarters of the ALB's 60s")
	require.Equal(t, 10*time.Minute, s.maxLifetime)
	require.Equal(t, DefaultKeepAliveIdle, s.keepAlive.Idle, "no middlebox in the chain")
}

func TestDialerDoesNotModifyNetDialer(t *testing.T) {
	nd := &net.Dialer{Timeout: time.Second}
	d := &Dialer{NetDialer: nd, RefusedRetry: -1}
	c := dialTracked(t, d, listen(t, echo).Addr().String())
	require.NotNil(t, c)
	require.Equal(t, net.Dialer{Timeout: time.Second}, *nd)
}

func TestRefusedDialRetriesWithinBudget(t *testing.T) {
	addr := closedPort(t)

	// A server that comes back within the budget is reached.
	relisten := make(chan net.Listener, 1)
	time.AfterFunc(150*time.Millisecond, func() {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			go func() {
				if c, err := l.Accept(); err == nil {
					echo(c)
				}
			}()
		}
		relisten <- l
	})
	c, err := (&Dialer{RefusedRetry: 2 * time.Second}).Dial("tcp", addr)
	l := <-relisten
	require.NotNil(t, l, "the port was taken meanwhile")
	t.Cleanup(func() { l.Close() })
	require.NoError(t, err)
	c.Close()
	l.Close()

	// One that stays down is reported as refused once the budget is spent.
	start := time.Now()
	_, err = (&Dialer{RefusedRetry: 200 * time.Millisecond}).Dial("tcp", addr)
	require.Equal(t, ClassRefused, Classify(err))
	require.Less(t, time.Since(start), 2*time.Second)

	// A canceled context ends the retries.
	destinations.drop(destKey{"tcp", addr}) // the budget above took it down
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&Dialer{RefusedRetry: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second)
}

// A destination refused for a whole budget is down for the Dialer whose
// budget it is: its later dials fail at once with CauseDown, until a probe
// connects again. The run of refusals is a fact every Dialer shares; a
// Dialer with a longer budget decides for itself, and rides through.
func TestDownDestinationFailsFastUntilAProbeConnects(t *testing.T) {
	addr := closedPort(t)
	var events []Event
	var mu sync.Mutex
	observe := func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	d := &Dialer{RefusedRetry: 200 * time.Millisecond, Observer: observe}

	start := time.Now()
	_, err := d.Dial("tcp", addr)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "the first dial spends the budget")
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, CauseNotListening, ce.Cause())
	require.True(t, d.Down("tcp", addr))

	for _, same := range []*Dialer{d, {RefusedRetry: 200 * time.Millisecond}} { // down for every Dialer with that budget
		requireDownFast(t, same, addr)
	}

	// A Dialer with a longer budget is not down: it retries, and connects
	// once the server is back within its budget.
	patient := &Dialer{RefusedRetry: 5 * time.Second}
	require.False(t, patient.Down("tcp", addr))
	back := make(chan net.Listener, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err == nil {
			go acceptLoop(l, echo)
		}
		back <- l
	}()
	start = time.Now()
	c, err := patient.Dial("tcp", addr)
	l := <-back
	require.NotNil(t, l, "the port was taken meanwhile")
	defer l.Close()
	require.NoError(t, err, "rides through a restart shorter than its own budget")
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
	c.Close()

	c, err = d.Dial("tcp", addr)
	require.NoError(t, err, "up again for everyone: the run ended")
	c.Close()

	mu.Lock()
	var kinds []EventKind
	for _, e := range events {
		if e.Kind == EventDown || e.Kind == EventUp {
			kinds = append(kinds, e.Kind)
		}
	}
	mu.Unlock()
	require.Equal(t, []EventKind{EventDown, EventUp}, kinds, "each once, as this Dialer saw them")
	require.Nil(t, destinations.lookup(destKey{"tcp", addr}), "up again: forgotten")
}

// requireDownFast dials addr, down for d, and requires the dial to fail at
// once: refused, cause CauseDown, still ECONNREFUSED, saying since when.
func requireDownFast(t *testing.T, d *Dialer, addr string) {
	t.Helper()
	start := time.Now()
	_, err := d.Dial("tcp", addr)
	require.Less(t, time.Since(start), 50*time.Millisecond, "a down destination fails at once")
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, ClassRefused, ce.Class)
	require.Equal(t, CauseDown, ce.Cause())
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Contains(t, err.Error(), "down since")
}

// A destination that is down for a Dialer is dialed again, as a probe,
// within about a quarter of a second of its return while dials keep
// coming: not on a long backoff.
func TestDownDestinationIsUsedSoonAfterItReturns(t *testing.T) {
	addr := closedPort(t)
	d := &Dialer{RefusedRetry: 50 * time.Millisecond}
	_, err := d.Dial("tcp", addr)
	require.Error(t, err)
	require.True(t, d.Down("tcp", addr))
	for range 300 { // a 3 s outage: the down destination is asked for every 10 ms
		_, _ = d.Dial("tcp", addr)
		time.Sleep(10 * time.Millisecond)
	}
	back := listenAgain(t, addr, time.Now(), echo)
	for time.Since(back) < 2*time.Second {
		if c, err := d.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Less(t, time.Since(back), 400*time.Millisecond, "used again within a probe interval, on a busy machine too")
}

// A dial to a destination that is down for its Dialer still connects once,
// as a net.Dialer's does, and fails at once if refused: the first dial
// after the return connects, however soon after the last refusal it comes
// (issue 16, row 4: it failed with CauseDown until a probe was due, while
// stock connected).
func TestDownDestinationConnectsOnTheFirstDialAfterItReturns(t *testing.T) {
	addr := closedPort(t)
	d := &Dialer{RefusedRetry: 50 * time.Millisecond}
	_, err := d.Dial("tcp", addr)
	require.Error(t, err)
	require.True(t, d.Down("tcp", addr))
	for range 5 {
		requireDownFast(t, d, addr)
	}
	listenAgain(t, addr, time.Now(), echo)
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err, "the first dial after the return connects")
	c.Close()
	require.False(t, d.Down("tcp", addr))
}

// Dials that wait out a restart share what each retry learns, and come
// back evenly when it ends (issue 17: a restart storm overflowed the
// listen queue). While the server is down its port sees a retry about
// every retryGap, not one per dial per backoff step; once a connect
// succeeds, the dials go in the order they began to wait, one by one over
// the run's length (at most wakeSpread), none long after the return.
func TestWaitingDialsReturnEvenlyInTheirOrder(t *testing.T) {
	addr := closedPort(t)
	var mu sync.Mutex
	var syns []time.Time
	nd := &net.Dialer{ControlContext: func(context.Context, string, string, syscall.RawConn) error {
		mu.Lock()
		syns = append(syns, time.Now())
		mu.Unlock()
		return nil
	}}
	d := &Dialer{NetDialer: nd, RefusedRetry: 10 * time.Second}

	const n = 100
	connected := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n { // one every millisecond: dial i is the i-th to wait
		wg.Go(func() {
			c, err := d.Dial("tcp", addr)
			connected[i], errs[i] = time.Now(), err
			if err == nil {
				c.Close()
			}
		})
		time.Sleep(time.Millisecond)
	}
	waiting := time.Now()
	back := listenAgain(t, addr, start.Add(400*time.Millisecond), hangUp) // a run longer than wakeSpread
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "rides through a restart shorter than RefusedRetry")
	}

	mu.Lock()
	retries := 0
	for _, s := range syns {
		if s.After(waiting) && s.Before(back) {
			retries++
		}
	}
	mu.Unlock()
	down := back.Sub(waiting)
	require.LessOrEqual(t, retries, 2*int(down/retryGap)+5, "connects while %v down, %d dials waiting", round(down), n)

	inverted := 0
	for i := range n {
		for j := i + 1; j < n; j++ {
			if connected[j].Before(connected[i]) {
				inverted++
			}
		}
	}
	require.Less(t, inverted, n*(n-1)/2/10, "pairs of dials that went back in the other order than they began to wait")

	sorted := slices.Clone(connected)
	slices.SortFunc(sorted, time.Time.Compare)
	require.Less(t, sorted[0].Sub(back), 150*time.Millisecond, "the first dial after the return")
	require.Less(t, sorted[n-1].Sub(back), wakeSpread+300*time.Millisecond, "the last dial after the return")
	most, k := 0, 0
	for i := range sorted {
		for sorted[i].Sub(sorted[k]) > 25*time.Millisecond {
			k++
		}
		most = max(most, i-k+1)
	}
	t.Logf("%d connects while %v down; %d of %d pairs went back in the other order; first back after %v, last after %v; at most %d within 25 ms",
		retries, round(down), inverted, n*(n-1)/2, round(sorted[0].Sub(back)), round(sorted[n-1].Sub(back)), most)
	require.LessOrEqual(t, most, n*35/100, "dials within 25 ms of each other after the return (even: %d)", n/10)
}

// Woken dials whose slots come at once (their timers fired late together,
// on a busy machine) still go spread/n apart, each after the one before,
// and one that comes later than that goes at once.
func TestWokenDialsKeepTheirPace(t *testing.T) {
	w := &wakeup{n: 10, spread: 100 * time.Millisecond}
	now := time.Now()
	for i := range 5 {
		require.Equal(t, time.Duration(i)*10*time.Millisecond, w.pace(now), "dial %d of those due at once", i)
	}
	later := now.Add(200 * time.Millisecond)
	require.Zero(t, w.pace(later), "a dial past the pace goes at once")
	require.Equal(t, 10*time.Millisecond, w.pace(later), "and the next one after it")
}

// Callers whose deadlines are shorter than RefusedRetry still take a
// destination down: their refusals add up to one run.
func TestShortDeadlinesStillFindTheDestinationDown(t *testing.T) {
	addr := closedPort(t)
	d := &Dialer{RefusedRetry: 300 * time.Millisecond}
	var ce *ConnError
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		require.ErrorAs(t, err, &ce)
		if ce.Cause() == CauseDown {
			require.Less(t, time.Since(start), 50*time.Millisecond, "a down destination fails at once")
			require.GreaterOrEqual(t, i, 2, "the run took three deadlines of 100 ms to cover the budget")
			return
		}
	}
	t.Fatal("the destination never went down")
}

// A run of failed connects that holds a connect answered by a reset (a
// restart reset the pool's fresh connections, then refused) does not end at
// the return, since whatever accepted may reset again; but the dials that
// wait it out go at the return all the same, and none surfaces a refusal of
// a restart shorter than its RefusedRetry (soak, row 3).
func TestWaitingDialsGoWhenARunWithResetsReturns(t *testing.T) {
	addr := closedPort(t)
	now := time.Now()
	destinations.entry(destKey{"tcp", addr}, now).refused(now, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
	d := &Dialer{RefusedRetry: 500 * time.Millisecond}

	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := d.Dial("tcp", addr)
			errs[i] = err
			if err == nil {
				c.Close()
			}
		})
	}
	listenAgain(t, addr, now.Add(300*time.Millisecond), hangUp)
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	require.Zero(t, failed, "dials that surfaced a refusal of a 300 ms restart, RefusedRetry 500 ms; first: %v", errors.Join(errs...))
}

// The first dial of each Dialer goes first at a destination's return: a
// client whose one dial began to wait behind many of another client's
// uses the destination again soon after its return, not at the end of the
// spread (soak, row 4: database/sql behind pgx's dials, 370 ms).
func TestEachDialersFirstWaitingDialGoesFirst(t *testing.T) {
	addr := closedPort(t)
	many, one := &Dialer{RefusedRetry: 10 * time.Second}, &Dialer{RefusedRetry: 10 * time.Second}
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var manyAt []time.Time
	dial := func(d *Dialer) time.Time {
		c, err := d.Dial("tcp", addr)
		if !assert.NoError(t, err) {
			return time.Time{}
		}
		c.Close()
		return time.Now()
	}
	start := time.Now()
	for range n {
		wg.Go(func() {
			at := dial(many)
			mu.Lock()
			manyAt = append(manyAt, at)
			mu.Unlock()
		})
		time.Sleep(time.Millisecond)
	}
	var oneAt time.Time
	wg.Go(func() { oneAt = dial(one) })
	back := listenAgain(t, addr, start.Add(400*time.Millisecond), hangUp) // a run longer than wakeSpread
	wg.Wait()
	slices.SortFunc(manyAt, time.Time.Compare)
	t.Logf("the one dial went %v after the return; the many, from %v to %v", round(oneAt.Sub(back)), round(manyAt[0].Sub(back)), round(manyAt[n-1].Sub(back)))
	require.Less(t, oneAt.Sub(back), wakeSpread/4, "the other client's one dial, queued behind %d", n)
	require.Greater(t, manyAt[n-1].Sub(back), wakeSpread/2, "the many still go over the spread")
}

// listenAgain listens on addr at at, serving every connection with serve
// until the test ends, and returns when it began to listen.
func listenAgain(t *testing.T, addr string, at time.Time, serve func(net.Conn)) time.Time {
	time.Sleep(time.Until(at))
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the port was taken meanwhile")
	t.Cleanup(func() { l.Close() })
	go acceptLoop(l, serve)
	return time.Now()
}

// hangUp closes a connection at once.
func hangUp(c net.Conn) { c.Close() }
