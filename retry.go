package rstpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"math/rand/v2"
	"net"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// A RetryReason says why rstpool ran work a second time: "none",
// "nothing-written" or "idempotent".
type RetryReason uint8

// The reasons for a retry, in the order the rule tests them.
const (
	// RetryNone ("none"): the work was not retried.
	RetryNone = RetryReason(rule.None)
	// RetryNothingWritten ("nothing-written"): the connection failed
	// before a byte of the work left, so the server cannot have seen it.
	RetryNothingWritten = RetryReason(rule.NothingWritten)
	// RetryIdempotent ("idempotent"): the work may have reached the
	// server, but nothing of its answer had arrived and a repeat is
	// harmless: an idempotent HTTP method (RFC 9110, 9.2.2), an
	// Idempotency-Key header, or work its caller declared idempotent.
	RetryIdempotent = RetryReason(rule.Idempotent)

	numRetryReasons = RetryIdempotent + 1
)

var retryReasonNames = [...]string{"none", "nothing-written", "idempotent"}

// String names the reason.
func (r RetryReason) String() string {
	if int(r) < len(retryReasonNames) {
		return retryReasonNames[r]
	}
	return "unknown"
}

// RetryBackoff is the longest pause before work runs a second time after a
// failure that may have reached the server: the pause is drawn between 60 %
// of it and all of it, so that a blip of the path (a proxy reload, a
// flapping link, about 100 ms) has passed, and callers a restart failed
// together do not come back together. Work whose connection the peer had
// forgotten while it sat idle (it took none of the work's bytes) goes
// again at once: the next connection is fine.
const RetryBackoff = 200 * time.Millisecond

// retryPause is the pause before a retry: 120 to 200 ms, past a 100 ms
// blip with room for a timer that fires late.
var retryPause = Backoff{Base: RetryBackoff, Cap: RetryBackoff, Jitter: 0.4}

// A Backoff spaces attempts. The wait before attempt n (counting from 0)
// is drawn at random from [(1-Jitter)·d, d], where d is Base·2ⁿ, at most
// Cap. Full jitter (Jitter 1, the default) spreads best the callers that
// one fault failed together; a Jitter of 0.5 keeps every wait at least
// half its step.
type Backoff struct {
	// Base is the first step. It must be positive.
	Base time.Duration
	// Cap is the largest step. Zero: no cap.
	Cap time.Duration
	// Jitter is the random share of each wait, in [0, 1]. Zero: 1.
	Jitter float64
}

// check reports a Backoff that cannot work.
func (b Backoff) check(field string) error {
	switch {
	case b.Base <= 0:
		return configErr(field+".Base", "%s must be positive", b.Base)
	case b.Cap < 0:
		return configErr(field+".Cap", "%s must not be negative (zero: no cap)", b.Cap)
	case b.Jitter < 0 || b.Jitter > 1:
		return configErr(field+".Jitter", "%g must be between 0 and 1 (zero: full jitter)", b.Jitter)
	}
	return nil
}

// Next returns the wait before attempt n, counting from 0.
func (b Backoff) Next(n int) time.Duration {
	d := max(b.Base, 1)
	for i := 0; i < n && (b.Cap <= 0 || d < b.Cap) && d < time.Hour; i++ {
		d *= 2
	}
	if b.Cap > 0 {
		d = min(d, b.Cap)
	}
	j := b.Jitter
	if j <= 0 || j > 1 {
		j = 1
	}
	fixed := d - time.Duration(float64(d)*j)
	return fixed + rand.N(d-fixed+1)
}

// Sleep waits Next(n), or until ctx is done; it reports whether it waited
// the whole time.
func (b Backoff) Sleep(ctx context.Context, n int) bool { return sleepCtx(ctx, b.Next(n)) }

// sleepCtx waits d or until ctx is done; it reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	_, ok := waitRetry(ctx, d, nil)
	return ok
}

// waitRetry waits d, or until ctx is done or back is closed (another
// connect to the destination succeeded; nil: never). It reports whether
// back was closed by then, and false when ctx ended first.
func waitRetry(ctx context.Context, d time.Duration, back <-chan struct{}) (woken, ok bool) {
	if d <= 0 {
		return false, ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-t.C:
		select { // both at once: the return wins
		case <-back:
			return true, true
		default:
			return false, true
		}
	case <-back:
		return true, true
	}
}

// retrier is the consumer of Retry: one for the process, with the default
// RetryBudget.
var retrier = &consumer{source: "retry"}

// Retry runs fn and, when it failed because of its connection, runs it once
// more, for clients that do not retry themselves: database/sql with an
// in-flight query the server ended (PostgreSQL's 57P01 at a restart,
// MySQL's invalid connection), pgxpool, a protocol of your own on a Pool.
//
// The rule is the one every rstpool consumer applies: a connection
// failure only (reset, broken-pipe, peer-closed, refused; never an error
// of the server or the application, never a timeout), at most once, never
// once ctx is done, and only when the work is idempotent or provably
// nothing of it left. The second run follows a jittered pause of up to
// RetryBackoff, or none when the peer had forgotten an idle connection.
// When the connection had died while it sat idle for a second or more, the
// second run's checkouts (Pool, WrapConnector, Consumer and so rstpgx)
// ping the connections that sat idle as long before handing one out, or
// retire them where they cannot ping: a hop that forgot one forgot them
// too. When it died otherwise after its connect (reset or closed
// mid-exchange, as a restart does), those that can ping ping the
// connections that carried nothing since it died: a server restarting
// under load resets its connections over a moment, not at once. A
// connection failure includes database/sql's driver.ErrBadConn, which it
// returns once its own attempts on pooled connections and a new one failed
// before the statement left.
// Retries that can add load draw from one RetryBudget for the whole
// process, with its defaults. The second attempt's error is returned as
// is.
//
// Retry proves that nothing of the work left by watching, under the
// context it passes to fn, every step fn takes, and it retries
// non-idempotent work only when it saw every step and none wrote a byte.
// It sees:
//
//   - every connection an rstpool consumer hands out (Transport, Pool,
//     WrapConnector, rstpgx.OpenDB, pgxpool set up with rstpgx.Configure),
//     and every statement on a pgx connection set up with rstpgx, held or
//     not (through the tracer rstpgx installs);
//   - every request of any net/http client, stock transports included
//     (through an httptrace.ClientTrace on the context): its bytes are
//     counted when an rstpool Dialer dialed its connection, else it is
//     assumed to have left;
//   - every dial of an rstpool Dialer.
//
// It does not see a step through a client that keeps its own connections
// outside these (go-redis, a bare Conn, another driver, a pgx connection
// not set up with rstpgx): pass idempotent true for such work only when it
// is idempotent, since a non-idempotent step Retry cannot see may have
// left before a later, counted step failed.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	retrier.begin()
	wctx, w := withWork(ctx)
	err := fn(wctx)
	if err == nil {
		retrier.budget.answered()
		return nil
	}
	d := retrier.retry(ctx, failure{
		err: err, callerDone: ctx.Err() != nil, connFailure: connFailure(err) || gaveUpBadConn(err),
		replayable: true, nothingLeft: w.nothingLeft(), idempotent: idempotent,
		othersLeft: !w.onlyUntouchedLeft(),
	}, 0, false, time.Time{})
	if d.reason == RetryNone || !sleepCtx(ctx, d.wait) {
		retrier.unspent(d)
		return err
	}
	if dt := doubtAfter(err); dt != (doubt{}) {
		// The connections of the pool fn draws from were most likely lost
		// the same way: those idle as long as the dead one, or, after a
		// death mid-exchange, those silent since (a restart resets them
		// all, on a busy server over a moment).
		freshRuns.Add(1)
		defer freshRuns.Add(-1)
		ctx = context.WithValue(ctx, freshPastKey{}, dt)
	}
	settled := false
	defer func() {
		if !settled { // fn panicked
			retrier.spent(d)
		}
	}()
	err = fn(ctx)
	settled = true
	if err == nil {
		retrier.succeeded(d)
	} else {
		retrier.spent(d)
	}
	return err
}

// gaveUpBadConn reports whether err is database/sql's driver.ErrBadConn:
// the driver found its connection unusable before the statement left
// (pgx's stdlib returns it bare, without the failure), and database/sql
// gave up after trying pooled connections and a new one, as a restart or
// a blip makes it do. A connection failure, then, whose work may run again
// as Retry's rule allows.
func gaveUpBadConn(err error) bool { return errors.Is(err, driver.ErrBadConn) }

// freshRuns counts the retries of Retry under way whose context carries a
// freshPastKey: while it is zero, a checkout spares itself the lookup.
var freshRuns atomic.Int32

// freshPastKey holds, on the context of Retry's second run, the doubt
// the first run's failure casts on the connections of its pool.
type freshPastKey struct{}

// A doubt is what the first run's dead connection says of the others:
// those idle as long died the same way (idle), or those that carried
// nothing since it died mid-exchange may have (since, a mono time), which
// only a ping can tell: a server that failed one request does not make
// its pool worth retiring.
type doubt struct {
	idle  time.Duration
	since int64
}

// doubtAfter returns the doubt that err casts: how long the connection
// of err had sat idle when it died with nothing back after its quiet spell,
// at least DefaultLearnFloor (no hop reaps sooner); else, when it was reset
// or closed after its connect, or database/sql gave up on bad connections,
// that it died now.
func doubtAfter(err error) doubt {
	ce := connErrorOf(err)
	switch {
	case ce == nil:
		if gaveUpBadConn(err) {
			return doubt{since: mono()}
		}
		return doubt{}
	case ce.quietDeath && ce.Idle >= DefaultLearnFloor:
		return doubt{idle: ce.Idle}
	case ce.Op != "dial" && ce.Class.peerEnded() && !ce.connectReset:
		return doubt{since: mono()}
	}
	return doubt{}
}

// freshPast returns the idleness past which a checkout under ctx doubts a
// connection (see Retry), or 0, and whether only a ping may settle that
// doubt (a connection that cannot be pinged is then handed out as usual).
func freshPast(ctx context.Context) (time.Duration, bool) {
	if freshRuns.Load() == 0 || ctx == nil {
		return 0, false
	}
	switch dt, _ := ctx.Value(freshPastKey{}).(doubt); {
	case dt.idle > 0:
		return dt.idle, false
	case dt.since > 0:
		return max(time.Duration(mono()-dt.since), time.Millisecond), true
	}
	return 0, false
}

// A work is the accounting of one call of Retry: every connection handed
// out or used under its context, with the bytes that connection had
// written then. It proves "nothing of the work left" across several steps
// and connections, which no single error can: a step that failed before
// its first byte says nothing of the steps before it.
type work struct {
	mu    sync.Mutex
	seen  int  // handouts, uses and dials seen
	blind bool // a step whose bytes cannot be counted
	conns []handed
}

type handed struct {
	c  *Conn
	w0 int64
}

type workKey struct{}

// withWork returns a context that records the work's steps: rstpool's
// consumers and Dialers note theirs, and any net/http client reports its
// connections through the trace.
func withWork(ctx context.Context) (context.Context, *work) {
	w := &work{}
	ctx = context.WithValue(ctx, workKey{}, w)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: w.gotConn}), w
}

func workIn(ctx context.Context) *work {
	w, _ := ctx.Value(workKey{}).(*work)
	return w
}

// gotConn records the connection a net/http client got for a request.
func (w *work) gotConn(info httptrace.GotConnInfo) { w.note(Tracked(info.Conn), info.Conn) }

// noteHandout records in ctx's work, if any, that nc is handed out or
// used; c is its tracked connection (nil: untracked).
func noteHandout(ctx context.Context, c *Conn, nc net.Conn) {
	if w := workIn(ctx); w != nil {
		w.note(c, nc)
	}
}

// noteConnecting records in ctx's work, if any, that a connect starts.
func noteConnecting(ctx context.Context) {
	if w := workIn(ctx); w != nil {
		w.mu.Lock()
		w.seen++
		w.mu.Unlock()
	}
}

// note records a connection of the work. Noting the same connection again
// keeps its first count.
func (w *work) note(c *Conn, nc net.Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen++
	if c == nil {
		w.blind = w.blind || nc != nil
		return
	}
	for _, h := range w.conns {
		if h.c == c {
			return
		}
	}
	w.conns = append(w.conns, handed{c: c, w0: c.nwritten.Load()})
}

// onlyUntouchedLeft reports whether every step was seen and no byte of the
// work left but on connections whose peer took none (a connect reset): a
// retry then repeats nothing the server saw.
func (w *work) onlyUntouchedLeft() bool {
	return w.leftNothingBut(func(c *Conn) bool {
		f := c.failed()
		return f != nil && f.untouched
	})
}

// nothingLeft reports whether the work provably sent no byte: a step was
// seen, every step's connection could be counted, and none wrote.
func (w *work) nothingLeft() bool { return w.leftNothingBut(nil) }

// leftNothingBut reports whether a step was seen, every step's connection
// could be counted, and none wrote but those that spared says carried
// nothing of the work (nil: none).
func (w *work) leftNothingBut(spared func(*Conn) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == 0 || w.blind {
		return false // the client is not one Retry sees, or a connection cannot be counted
	}
	for _, h := range w.conns {
		if h.c.nwritten.Load() != h.w0 && (spared == nil || !spared(h.c)) {
			return false
		}
	}
	return true
}
