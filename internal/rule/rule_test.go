package rule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetry(t *testing.T) {
	conn := Failure{ConnFailure: true, Replayable: true}
	with := func(f func(*Failure)) Failure { c := conn; f(&c); return c }
	cases := []struct {
		name string
		f    Failure
		want Reason
	}{
		{"nothing left", with(func(f *Failure) { f.NothingLeft = true }), NothingWritten},
		{"nothing left, even non-idempotent after an answer byte", with(func(f *Failure) { f.NothingLeft, f.Answered = true, true }), NothingWritten},
		{"idempotent before the answer", with(func(f *Failure) { f.Idempotent = true }), Idempotent},
		{"idempotent after the answer began", with(func(f *Failure) { f.Idempotent, f.Answered = true, true }), None},
		{"non-idempotent that may have left", conn, None},
		{"already retried", with(func(f *Failure) { f.NothingLeft, f.Retried = true, true }), None},
		{"caller gave up", with(func(f *Failure) { f.NothingLeft, f.CallerDone = true, true }), None},
		{"application error", with(func(f *Failure) { f.NothingLeft, f.Idempotent, f.ConnFailure = true, true, false }), None},
		{"body cannot be sent again", with(func(f *Failure) { f.NothingLeft, f.Replayable = true, false }), None},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Retry(c.f).Reason, c.name)
	}
}

// How a retry goes, and who pays: a stale connection's work is repaired
// for free, after the pause (a blip closes idle connections as a hop's
// timer does); a new connection reset before the peer took a byte waits
// as a refused connect does, and may try again while the work is
// idempotent or never left.
func TestRetryDecision(t *testing.T) {
	idem := Failure{ConnFailure: true, Replayable: true, Idempotent: true}
	with := func(f func(*Failure)) Failure { c := idem; f(&c); return c }
	cases := []struct {
		name string
		f    Failure
		want Decision
	}{
		{"mid-exchange: paid, after the pause", idem, Decision{Reason: Idempotent, Wait: Pause}},
		{"stale, the work left: free, after the pause", with(func(f *Failure) { f.Stale = true }), Decision{Reason: Idempotent, Wait: Pause, Free: true}},
		{"stale, found dead before the work left: free, after the pause", with(func(f *Failure) { f.Stale, f.NothingLeft = true, true }),
			Decision{Reason: NothingWritten, Wait: Pause, Free: true}},
		{"connect reset, nothing left: free, as a redial", with(func(f *Failure) { f.ConnectReset, f.NothingLeft = true, true }),
			Decision{Reason: NothingWritten, Wait: Redial, Free: true}},
		{"connect reset, idempotent, again", with(func(f *Failure) { f.ConnectReset, f.Retried = true, true }),
			Decision{Reason: Idempotent, Wait: Redial, Free: true}},
		{"connect reset, non-idempotent work that left", with(func(f *Failure) { f.ConnectReset, f.Idempotent = true, false }), Decision{}},
		{"retried once already", with(func(f *Failure) { f.Stale, f.Retried = true, true }), Decision{}},
		{"retry reset on arrival, idempotent: paid, after the pause", with(func(f *Failure) { f.ResetOnArrival, f.Retried, f.ArrivalBudgetLeft = true, true, true }),
			Decision{Reason: Idempotent, Wait: Pause}},
		{"reset on arrival past the connect's budget", with(func(f *Failure) { f.ResetOnArrival, f.Retried = true, true }), Decision{}},
		{"retry reset on arrival, non-idempotent", with(func(f *Failure) {
			f.ResetOnArrival, f.Retried, f.ArrivalBudgetLeft, f.Idempotent = true, true, true, false
		}), Decision{}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Retry(c.f), c.name)
	}
}

// A checkout that doubts connections idle for x pings them first, or
// retires them where it cannot ping; it never loosens a limit.
func TestLimitsDoubting(t *testing.T) {
	l := Limits{IdleLimit: time.Minute, PingAfter: -1, CanPing: true}
	require.Equal(t, 2*time.Second, l.Doubting(2*time.Second, true).PingAfter)
	require.Equal(t, time.Minute, l.Doubting(2*time.Second, true).IdleLimit)
	require.Equal(t, 2*time.Second, l.Doubting(2*time.Second, false).IdleLimit)
	tight := Limits{IdleLimit: time.Second, PingAfter: time.Second, CanPing: true}
	require.Equal(t, tight, tight.Doubting(2*time.Second, true))
	require.Equal(t, tight, tight.Doubting(2*time.Second, false))
	c := Conn{Idle: 3 * time.Second}
	require.Equal(t, Ping, Checkout(c, l.Doubting(2*time.Second, true), func() Health { return Alive }))
	require.Equal(t, RetireIdleLimit, Checkout(c, Limits{}.Doubting(2*time.Second, false), func() Health { return Alive }))
}

func TestCheckout(t *testing.T) {
	peeked := 0
	peek := func(h Health) func() Health { return func() Health { peeked++; return h } }
	lim := Limits{IdleLimit: time.Minute, Lifetime: time.Hour, PeekAfter: 10 * time.Millisecond, PingAfter: 30 * time.Second, CanPing: true}
	live := Conn{Idle: time.Second, Age: time.Minute, Peekable: true}
	with := func(c Conn, f func(*Conn)) Conn { f(&c); return c }
	noPing := lim
	noPing.CanPing = false
	driver := lim
	driver.PingReadsPending = true
	cases := []struct {
		name  string
		c     Conn
		l     Limits
		h     Health
		want  Verdict
		peeks int
	}{
		{"alive", live, lim, Alive, Keep, 1},
		{"peer's FIN already read: no peek", with(live, func(c *Conn) { c.PeerClosed = true }), lim, Alive, RetirePeerClosed, 0},
		{"lifetime before idle", with(live, func(c *Conn) { c.Age, c.Idle = 2*time.Hour, 2*time.Minute }), lim, Alive, RetireLifetime, 0},
		{"idle limit", with(live, func(c *Conn) { c.Idle = time.Minute }), lim, Alive, RetireIdleLimit, 0},
		{"closed", live, lim, Closed, RetirePeerClosed, 1},
		{"reset", live, lim, Reset, RetirePeerClosed, 1},
		{"pending, raw ping: the stream is out of step", live, lim, Pending, RetireUnsolicited, 1},
		{"pending under TLS, raw ping: pinged through the record layer", with(live, func(c *Conn) { c.Framed = true }), lim, Pending, Ping, 1},
		{"pending under TLS, no ping: the record layer's own", with(live, func(c *Conn) { c.Framed = true }), noPing, Pending, Keep, 1},
		{"pending, driver ping reads it", live, driver, Pending, Ping, 1},
		{"unknown: ping", live, lim, Unknown, Ping, 1},
		{"unknown, no ping", live, noPing, Unknown, Keep, 1},
		{"recent: no peek", with(live, func(c *Conn) { c.Idle = time.Millisecond }), lim, Closed, Keep, 0},
		{"idle beyond PingAfter", with(live, func(c *Conn) { c.Idle = 40 * time.Second }), lim, Alive, Ping, 1},
		{"untracked: no peek, ping by idleness", with(live, func(c *Conn) { c.Peekable, c.Idle = false, 40*time.Second }), lim, Closed, Ping, 0},
		{"no limits", with(live, func(c *Conn) { c.Idle, c.Age = 100*time.Hour, 100*time.Hour }), Limits{PeekAfter: -1, PingAfter: -1}, Closed, Keep, 0},
	}
	for _, c := range cases {
		peeked = 0
		require.Equal(t, c.want, Checkout(c.c, c.l, peek(c.h)), c.name)
		require.Equal(t, c.peeks, peeked, c.name+": peeks")
	}
	require.True(t, RetireUnsolicited.Retires())
	require.True(t, RetirePingFailed.Dead())
	require.False(t, RetireIdleLimit.Dead())
	require.False(t, Ping.Retires())
	require.Equal(t, "ping-failed", RetirePingFailed.String())
}
