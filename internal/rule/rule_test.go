package rule

import (
	"errors"
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
		require.Equal(t, c.want, Retry(c.f), c.name)
	}
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
		{"peer's FIN already read: no peek", with(live, func(c *Conn) { c.PeerClosed = true }), lim, Alive, RetireGone, 0},
		{"lifetime before idle", with(live, func(c *Conn) { c.Age, c.Idle = 2*time.Hour, 2*time.Minute }), lim, Alive, RetireAge, 0},
		{"idle limit", with(live, func(c *Conn) { c.Idle = time.Minute }), lim, Alive, RetireIdle, 0},
		{"closed", live, lim, Closed, RetireGone, 1},
		{"reset", live, lim, Reset, RetireGone, 1},
		{"pending, raw ping: the stream is out of step", live, lim, Pending, RetireStray, 1},
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
	require.True(t, RetireStray.Retires())
	require.False(t, Ping.Retires())
}

func TestPeeked(t *testing.T) {
	require.Equal(t, Reset, Peeked(Unknown, errors.New("bad file descriptor")), "a check that failed: the socket is broken")
	require.Equal(t, Unknown, Peeked(Unknown, nil), "a platform that cannot peek")
	require.Equal(t, Alive, Peeked(Alive, nil))
	require.Equal(t, Reset, Peeked(Reset, errors.New("connection reset")))
}
