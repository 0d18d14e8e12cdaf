package rstpool

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

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
	require.Equal(t, DefaultValidateAfter, s.validateAfter)
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	forgetDestination(t, addr)

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
	destinations.Delete(destinationKey("tcp", addr)) // the budget above took it down
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&Dialer{RefusedRetry: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second)
}

// forgetDestination drops what the process learned about addr when the
// test ends, so that a port the kernel hands out again starts clean.
func forgetDestination(t *testing.T, addr string) {
	t.Cleanup(func() { destinations.Delete(destinationKey("tcp", addr)) })
}

// A destination refused for a whole budget is down: later dials, through
// any Dialer, fail at once with CauseDown, until a probe connects again.
func TestDownDestinationFailsFastUntilAProbeConnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	forgetDestination(t, addr)
	var events []Event
	var mu sync.Mutex
	observe := func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	d := &Dialer{RefusedRetry: 200 * time.Millisecond, Observer: observe}

	start := time.Now()
	_, err = d.Dial("tcp", addr)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "the first dial spends the budget")
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, CauseNotListening, ce.Cause())

	for _, other := range []*Dialer{d, {RefusedRetry: time.Minute}} { // down for every Dialer
		start = time.Now()
		_, err = other.Dial("tcp", addr)
		require.Less(t, time.Since(start), 50*time.Millisecond, "a down destination fails at once")
		require.ErrorAs(t, err, &ce)
		require.Equal(t, ClassRefused, ce.Class)
		require.Equal(t, CauseDown, ce.Cause())
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		require.Contains(t, err.Error(), "down since")
	}

	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the port was taken meanwhile")
	defer l.Close()
	go acceptLoop(l, echo)
	require.Eventually(t, func() bool {
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 3*time.Second, 20*time.Millisecond, "a probe connects once the server is back")
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err, "up again for everyone")
	c.Close()

	mu.Lock()
	var kinds []EventKind
	for _, e := range events {
		if e.Kind == EventDown || e.Kind == EventUp {
			kinds = append(kinds, e.Kind)
		}
	}
	mu.Unlock()
	require.Equal(t, []EventKind{EventDown, EventUp}, kinds)
	require.Nil(t, lookupDestination(destinationKey("tcp", addr)), "up again: forgotten")
}

// Callers whose deadlines are shorter than RefusedRetry still take a
// destination down: their refusals add up to one run.
func TestShortDeadlinesStillFindTheDestinationDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	forgetDestination(t, addr)
	d := &Dialer{RefusedRetry: 300 * time.Millisecond}
	var ce *ConnError
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err = d.DialContext(ctx, "tcp", addr)
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
