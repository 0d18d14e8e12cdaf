package rstpool

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// Errors with which rstpool itself ends a connection, wrapped in a
// *ConnError with Op "validate" and Written 0 when a consumer retires a
// connection it already handed out: that piece of work never left, and
// every common client retries it on a new connection. Each is the error
// of one retirement reason ("idle-limit", "lifetime", "peer-closed",
// "unsolicited-data").
var (
	// ErrIdleLimit: a consumer retired the connection at checkout because
	// it sat idle beyond its idle limit. Class canceled: the client, not
	// the peer, ended it.
	ErrIdleLimit = errors.New("rstpool: connection idle beyond its limit")
	// ErrMaxLifetime: a consumer retired the connection at checkout because
	// it outlived its lifetime. Class canceled.
	ErrMaxLifetime = errors.New("rstpool: connection older than its maximum lifetime")
	// ErrPeerClosed: the peer had closed the connection while it was idle.
	// Class peer-closed.
	ErrPeerClosed = errors.New("rstpool: peer closed the connection while it was idle")
	// ErrUnsolicitedData: bytes nobody asked for waited on an idle
	// connection of a request-response protocol. Class other.
	ErrUnsolicitedData = errors.New("rstpool: unsolicited data pending on an idle connection")
)

// retireErrs are the errors of the retiring verdicts but ping-failed,
// whose error is the ping's own.
var retireErrs = [rule.NumVerdicts]error{
	rule.RetireIdleLimit:   ErrIdleLimit,
	rule.RetireLifetime:    ErrMaxLifetime,
	rule.RetirePeerClosed:  ErrPeerClosed,
	rule.RetireUnsolicited: ErrUnsolicitedData,
}

// A consumer is the part every rstpool consumer shares (Transport, Pool,
// WrapConnector, Retry, and through Consumer, rstpgx): it hands
// connections out by the checkout rule, and decides by the retry rule and
// its budget what follows a failure, counting and reporting both. The
// rules stay pure; the budget, the events and the counting happen here.
type consumer struct {
	source   string
	observer Observer
	dial     *settings // the Dialer's: how to wait out a connect reset; nil for Retry
	budget   budget
	counts   counters
}

// counters are what a consumer counted since it began.
type counters struct {
	work     atomic.Int64
	retried  [numRetryReasons]atomic.Int64
	free     atomic.Int64 // retries no budget paid for
	denied   atomic.Int64
	surfaced [ClassOther + 1]atomic.Int64
	retired  [rule.NumVerdicts]atomic.Int64
}

// init sets the consumer up before its first use.
func (k *consumer) init(source string, o Observer, dial *settings, b RetryBudget) {
	k.source, k.observer, k.dial = source, o, dial
	k.budget.set(b)
}

// begin counts a piece of work: it credits the retry budget.
func (k *consumer) begin() {
	k.counts.work.Add(1)
	k.budget.deposit()
}

// A checkout is one connection about to be handed out, as the checkout
// rule sees it.
type checkout struct {
	facts rule.Conn
	limit rule.Limits
	conn  *Conn  // the tracked connection to peek at; nil: untracked
	ping  pinger // nil: the consumer cannot ping
	addr  string // for events
}

// checkout applies the checkout rule, pings where it says so, and counts
// and reports a retirement. It returns the verdict (Keep, or Ping when a
// ping passed, or why it retires) and nil when the connection may be
// handed out, else the error that retires it.
func (k *consumer) checkout(ctx context.Context, c *checkout) (rule.Verdict, error) {
	if x, pingOnly := freshPast(ctx); x > 0 && (!pingOnly || c.ping != nil && c.limit.CanPing) {
		c.limit = c.limit.Doubting(x, c.ping != nil)
	}
	var err error
	switch v := c.judge(); {
	case v.Retires():
		k.retire(v, c)
		return v, retireErrs[v]
	case v == rule.Ping:
		if err = c.ping.ping(ctx); err == nil || ctx.Err() != nil {
			return v, err // a canceled ping retires nothing
		}
		k.retire(rule.RetirePingFailed, c)
		return rule.RetirePingFailed, err
	default:
		return v, nil
	}
}

// judge applies the checkout rule to c, peeking where it says so; it
// neither pings nor counts.
func (c *checkout) judge() rule.Verdict {
	peek := func() rule.Health { return rule.Unknown }
	if c.conn != nil {
		peek = c.conn.health
	}
	lim := c.limit
	lim.CanPing = lim.CanPing && c.ping != nil
	return rule.Checkout(c.facts, lim, peek)
}

// retire counts and reports c closed instead of handed out, for v; its
// client's goodbye goes unchecked.
func (k *consumer) retire(v rule.Verdict, c *checkout) {
	addr := c.addr
	if c.conn != nil {
		c.conn.leave()
		if addr == "" {
			addr = remote(c.conn.nc)
		}
	}
	k.retired(v, c.facts.Idle, addr)
}

// A pinger sends a connection's protocol ping and reads the answer.
type pinger interface{ ping(context.Context) error }

// pingFunc is a ping given as a function.
type pingFunc func(context.Context) error

func (f pingFunc) ping(ctx context.Context) error { return f(ctx) }

// retired counts and reports a connection closed instead of handed out.
func (k *consumer) retired(v rule.Verdict, idle time.Duration, addr string) {
	k.counts.retired[v].Add(1)
	if o := k.observer; o != nil {
		kind := EventRetired
		if v.Dead() {
			kind = EventCaughtDead
		}
		o(Event{Kind: kind, Source: k.source, Addr: addr, Reason: v.String(), Duration: idle})
	}
}

// handOut starts a piece of work on c under ctx: ConnError.Written counts
// from here, and Retry counts c's bytes as the work's.
func handOut(ctx context.Context, c *Conn, nc net.Conn) {
	if c != nil {
		c.begin()
	}
	noteHandout(ctx, c, nc)
}

// A failure is what a consumer knows of work that failed.
type failure struct {
	err         error
	retried     bool // it already ran again
	callerDone  bool
	replayable  bool
	nothingLeft bool
	answered    bool
	idempotent  bool
	connFailure bool // the consumer's own test; see connFailure
	waited      bool // the connection sat idle in the consumer's pool before the work
	// othersLeft: steps of the work before the failing connection's may
	// have sent bytes (Retry around several steps): a connect reset of
	// the last step then says nothing of the work.
	othersLeft bool
	// handshake: a TLS handshake on the work's new connection failed
	// before a byte of the work left: a connect reset by another name.
	handshake bool
	// fresh: the work's connection carried nothing before it, or failed
	// before it was handed out. Set where the server speaks first on a
	// new connection (HTTP/2's SETTINGS), so that its first bytes do not
	// hide a reset on arrival, during its preface exchange or after.
	fresh bool
}

// A decision is what follows a failure.
type decision struct {
	reason RetryReason // RetryNone: surface the failure
	wait   time.Duration
	// tokens: the budget tokens the work's paid retries hold. They come
	// back when a retry saves the work, or when the retry that took one
	// never reached the server; they are spent only by retries that
	// reached the server and failed.
	tokens int
	paid   bool // this retry took one of them
	// carried: this retry's token is the one its work's last retry took;
	// that retry, reset on arrival, left it unspent.
	carried bool
	// arrivals: when the work's first new connection was reset on
	// arrival; zero: none was.
	arrivals time.Time
}

// resetOnArrival reports whether f's new connection was reset or closed
// before a byte came back, after it took bytes of the work; or, on a
// connection whose server spoke first, before a byte of the answer.
func (f failure) resetOnArrival() bool {
	ce := connErrorOf(f.err)
	switch {
	case ce == nil || f.waited:
		return false
	case ce.connectReset:
		return !ce.untouched
	}
	return f.fresh && !f.answered && ce.Op != "dial" && !ce.Reused && ce.Class.peerEnded()
}

// retry applies the retry rule and the budget to a failure, counts and
// reports what it decided, and says how long to wait first. With carry,
// the failure is a paid retry's, reset on arrival: the next run takes a
// token of its own if the bucket has one, and else goes on that retry's
// token once work shows that the path is back.
func (k *consumer) retry(ctx context.Context, f failure, attempt int, carry bool, arrivals time.Time) decision {
	ce := connErrorOf(f.err)
	rf := rule.Failure{
		Retried: f.retried, CallerDone: f.callerDone, ConnFailure: f.connFailure, Replayable: f.replayable,
		NothingLeft: f.nothingLeft, Answered: f.answered, Idempotent: f.idempotent,
	}
	if ce != nil {
		// A connection that waited idle in the pool, even one never
		// used, and gave nothing back was lost by the path, not refused.
		rf.Stale = ce.stale() || f.waited && ce.quietDeath
		// A new connection whose peer took no byte (reset during its
		// TLS handshake, say) carried nothing of the work. One reset
		// after its peer took the request (a proxy that accepts and
		// resets, or a server that fails every request) may have loaded
		// the server: its retry is paid for, as any other.
		rf.ConnectReset = ce.untouched && !f.waited && !f.othersLeft
		rf.NothingLeft = rf.NothingLeft || rf.ConnectReset
		rf.ResetOnArrival = f.resetOnArrival()
	}
	if f.handshake {
		rf.ConnectReset, rf.NothingLeft = true, true
	}
	if rf.ResetOnArrival || rf.ConnectReset {
		if arrivals.IsZero() {
			arrivals = time.Now()
		}
		rf.ArrivalBudgetLeft = time.Since(arrivals) < k.arrivalBudget()
	}
	r := rule.Retry(rf)
	if r.Reason == rule.None {
		return decision{}
	}
	reason := RetryReason(r.Reason)
	var dst destKey
	if ce != nil {
		dst = ce.dialed
	}
	var waited time.Duration
	carry = carry && !r.Free
	if !r.Free {
		start := time.Now()
		ok := true
		switch {
		case carry && k.budget.withdraw():
			carry = false // a token of its own: the carried one is spent
		case carry:
			ok = k.budget.awaitAnswer(ctx, budgetWait)
		default: // takes a token at once if the bucket has one
			ok = k.budget.withdrawWait(ctx, budgetWait, k.runHold(dst))
		}
		if !ok {
			k.counts.denied.Add(1)
			k.report(EventRetryDenied, reason, f.err)
			return decision{}
		}
		waited = time.Since(start)
	}
	wait, ok := k.wait(r.Wait, dst, attempt, rf.ArrivalBudgetLeft)
	if !ok {
		if !r.Free && !carry {
			k.budget.settle(true)
		}
		return decision{} // the connect's own budget ran out: the destination is down
	}
	wait = max(wait-waited, 0) // the wait for a token counts towards the pause
	k.counts.retried[reason].Add(1)
	if r.Free {
		k.counts.free.Add(1)
	}
	k.report(EventRetry, reason, f.err)
	d := decision{reason: reason, wait: wait, paid: !r.Free, carried: carry, arrivals: arrivals}
	if d.paid && !carry {
		d.tokens = 1 // a carried token is counted already
	}
	return d
}

// next decides what follows the failure f of work whose last decision was
// prev (its attempt-th failure): the token of a paid retry that never
// reached the server (its connect refused, none of it written) comes back,
// and the tokens the work holds carry over.
func (k *consumer) next(ctx context.Context, prev decision, f failure, attempt int) decision {
	carry := false
	if prev.paid {
		switch {
		case f.nothingLeft || isDialError(f.err):
			k.unspent(prev)
			prev.tokens--
		case f.resetOnArrival():
			carry = true // settled below
		default:
			k.spent(prev)
		}
	}
	d := k.retry(ctx, f, attempt, carry, prev.arrivals)
	if carry && !d.carried {
		k.spent(prev) // not retried, or on a token of its own, or free
	}
	if d.reason == RetryNone {
		return decision{tokens: prev.tokens}
	}
	d.tokens += prev.tokens
	return d
}

// runHold returns when the Dialer gives up the run of failed connects to
// to under way (refused, or reset before a byte came back), or nil when no
// RefusedRetry bounds one. Until then the paid retries of a restart wait in
// the Dialer for the destination's return, holding their tokens, and a
// retry that found the bucket empty waits for those tokens with them.
func (k *consumer) runHold(to destKey) func() time.Time {
	if k.dial == nil || to.addr == "" || k.dial.refusedRetry <= 0 {
		return nil
	}
	return func() time.Time {
		if d := destinations.lookup(to); d != nil {
			return d.runDeadline(k.dial.refusedRetry)
		}
		return time.Time{}
	}
}

// arrivalBudget is how long the retries of idempotent work whose new
// connections are reset on arrival go on: as long as the Dialer retries a
// refused connect (its RefusedRetry), or the default's when no Dialer
// says; not at all when its Dialer retries no refusal.
func (k *consumer) arrivalBudget() time.Duration {
	if k.dial == nil {
		return DefaultRefusedRetry
	}
	return k.dial.refusedRetry
}

// wait returns how long to wait before a retry; for a connect reset to
// the destination to, the Dialer's backoff, and false once the run of
// failed connects outlasts its RefusedRetry.
func (k *consumer) wait(w rule.Wait, to destKey, attempt int, arrivalsLeft bool) (time.Duration, bool) {
	if w != rule.Redial {
		return retryPause.Next(0), true
	}
	var dst *destination
	if k.dial != nil && to.addr != "" && k.dial.refusedRetry > 0 {
		dst = destinations.lookup(to)
	}
	if dst == nil {
		// No run of failed connects bounds the retries (a TLS handshake
		// reset after the client's first flight is not one): once, past a
		// blip, and again while the work's own resets on arrival are
		// younger than the Dialer's RefusedRetry.
		return retryPause.Next(0), attempt == 0 || arrivalsLeft
	}
	d := k.dial.refusedBackoff.Next(attempt)
	return d, !time.Now().Add(d).After(dst.runDeadline(k.dial.refusedRetry))
}

// succeeded ends work that a retry saved: the retries paid for give their
// tokens back, since they replaced work the path lost.
func (k *consumer) succeeded(d decision) {
	if d.paid {
		k.budget.out.Add(-1)
	}
	k.budget.refund(d.tokens)
	k.budget.answered()
}

// spent settles the token of retry d, which reached the server and
// failed: it stays spent unless a later retry of the same work saves it.
func (k *consumer) spent(d decision) {
	if d.paid {
		k.budget.settle(false)
	}
}

// unspent gives back the token of retry d, which never reached the server
// (its connect refused, the caller gone during its pause, no connection
// for it); the tokens of earlier retries that reached the server and
// failed stay spent. A decision not to retry holds no token of its own.
func (k *consumer) unspent(d decision) {
	if d.paid {
		k.budget.settle(true)
	}
}

// surface counts and reports a failure returned to the caller: any but an
// error of the application (class other).
func (k *consumer) surface(err error, addr string) {
	class := Classify(err)
	if class == ClassOther || class == ClassNone {
		return
	}
	k.counts.surfaced[class].Add(1)
	if o := k.observer; o != nil {
		e := Event{Kind: EventSurfaced, Source: k.source, Addr: addr, Class: class, Err: err}
		e.Cause, e.Addr = causeAndAddr(err, addr)
		o(e)
	}
}

// report sends a retry event about err.
func (k *consumer) report(kind EventKind, reason RetryReason, err error) {
	if o := k.observer; o != nil {
		e := Event{Kind: kind, Source: k.source, Reason: reason.String(), Class: Classify(err), Err: err}
		e.Cause, e.Addr = causeAndAddr(err, "")
		o(e)
	}
}

// causeAndAddr returns the cause and address of the *ConnError in err's
// chain; addr when it names none.
func causeAndAddr(err error, addr string) (Cause, string) {
	if ce := connErrorOf(err); ce != nil {
		if ce.Addr != "" {
			addr = ce.Addr
		}
		return ce.Cause(), addr
	}
	return CauseUnknown, addr
}

// connFailure reports whether err is a failure of the connection under the
// work, as the retry rule means it: a reset, a broken pipe, an end of
// stream, a refused connect, or a retirement by the client before the work
// left. A timeout is not: the server may still be working on it.
func connFailure(err error) bool {
	if cl := Classify(err); cl.peerEnded() || cl == ClassRefused {
		return true
	}
	return errors.Is(err, ErrIdleLimit) || errors.Is(err, ErrMaxLifetime)
}

// Defaults of a RetryBudget.
const (
	// DefaultRetryRatio is the share of requests that may be retried over
	// time: with it, an outage or an overloaded server sees at most about
	// 1.1 times the load offered, as with gRPC's retry throttling and
	// Envoy's retry budget.
	DefaultRetryRatio = 0.1
	// DefaultRetryBurst is how many retries a full budget allows at once.
	DefaultRetryBurst = 10
)

// A RetryBudget bounds the retries of a Transport or a Pool that can add
// load to a struggling server: a token bucket that holds Burst tokens,
// gains Ratio of a token with every piece of work and loses one with every
// such retry. Only a retry that reached the server and failed spends its
// token: when a retry saves the work, the tokens of all its retries come
// back, and so does the token of a retry that never reached the server
// (its connect refused until the Dialer gave up). A retry the rule allows
// but the budget cannot pay for at once waits for a token to come back, up
// to a second after the bucket was last full or a token last came back
// (or while a retry that took one is under way, or, while connects to the
// destination fail, as long as the Dialer's RefusedRetry keeps the paid
// retries waiting for its return), so that the failures of one blip or
// restart are retried at most Burst at a time; if none comes back, the
// retry is not taken: the failure reaches the caller, counted and reported
// (EventRetryDenied). A retry whose new connection was reset on arrival
// (the blip outlasted its pause) runs the work once more on a token of
// its own when the bucket has one, and else on the token it holds, once
// other work went through. Over any stretch of N requests to a server
// that fails every request, at most Burst + Ratio × N paid retries fail;
// where other work goes through, a token may pay for one more retry, reset
// on arrival.
//
// A budget bounds load, not repair: a retry of work that a stale reused
// connection lost (it gave nothing back after sitting idle: the path lost
// it, and the retry replaces it) is never paid for, so a burst of any size
// on connections a restart or a forgetful middlebox killed surfaces
// nothing idempotent. Nor is the retry of a new connection reset before a
// byte of its work left: like a refused connect, it is bounded by the
// Dialer's RefusedRetry. The zero value applies the defaults.
type RetryBudget struct {
	// Ratio is the share of requests that may be retried, in (0, 1].
	// Zero: DefaultRetryRatio. Negative: no paid retries at all.
	Ratio float64
	// Burst is the most retries taken at once. Zero: DefaultRetryBurst.
	Burst int
}

// check reports a RetryBudget that cannot work.
func (b RetryBudget) check(field string) error {
	switch {
	case b.Ratio > 1:
		return configErr(field+".Ratio", "%g must be at most 1 (zero for the default, negative for no retries)", b.Ratio)
	case b.Burst < 0:
		return configErr(field+".Burst", "%d must not be negative (zero for the default)", b.Burst)
	}
	return nil
}

// budget is a RetryBudget at work. It counts in thousandths of a token
// what the bucket lacks to be full, so that its zero value is a full
// bucket of the defaults; a request costs one atomic load while the bucket
// is full.
type budget struct {
	mu     sync.Mutex
	freed  chan struct{} // closed by a refund; nil while no retry waits
	fullAt atomic.Int64  // mono time a withdrawal last found the bucket full
	backAt atomic.Int64  // mono time a token last came back
	out    atomic.Int64  // tokens taken by retries whose outcome is not yet known
	// waiting counts the retries waiting for a token or an answer;
	// answers counts the pieces of work that succeeded meanwhile.
	waiting atomic.Int32
	answers atomic.Uint64
	carried atomic.Int64 // tokens out held by retries waiting for an answer
	lack    atomic.Int64
	gain    int64 // per request; 0: the default
	size    int64 // 0: the default
	closed  bool  // no paid retries at all
}

// set configures bg from b.
func (bg *budget) set(b RetryBudget) {
	bg.gain, bg.size, bg.closed = int64(b.Ratio*1000), int64(b.Burst)*1000, b.Ratio < 0
}

func (bg *budget) params() (gain, size int64) {
	gain, size = bg.gain, bg.size
	if gain <= 0 {
		gain = DefaultRetryRatio * 1000
	}
	if size == 0 {
		size = DefaultRetryBurst * 1000
	}
	return gain, size
}

// deposit credits one request.
func (bg *budget) deposit() {
	for {
		l := bg.lack.Load()
		if l <= 0 {
			return
		}
		gain, _ := bg.params()
		if bg.lack.CompareAndSwap(l, max(l-gain, 0)) {
			return
		}
	}
}

// refund gives back n tokens of retries that succeeded or never reached
// the server, to a retry waiting for one first.
func (bg *budget) refund(n int) {
	if n <= 0 {
		return
	}
	for {
		l := bg.lack.Load()
		if l <= 0 || bg.lack.CompareAndSwap(l, max(l-int64(n)*1000, 0)) {
			break
		}
	}
	bg.backAt.Store(mono())
	bg.wake()
}

// settle ends the retry that took a token: the token comes back (refund)
// or stays spent. Either way the retries waiting for a token look again:
// once no retry that took one is under way, none can give one back.
func (bg *budget) settle(refund bool) {
	bg.out.Add(-1)
	if refund {
		bg.refund(1)
		return
	}
	bg.wake()
}

// watch returns a channel that the next wake closes.
func (bg *budget) watch() <-chan struct{} {
	bg.mu.Lock()
	defer bg.mu.Unlock()
	if bg.freed == nil {
		bg.freed = make(chan struct{})
	}
	return bg.freed
}

// wake tells the retries waiting for a token or an answer to look again.
func (bg *budget) wake() {
	bg.mu.Lock()
	if bg.freed != nil {
		close(bg.freed)
		bg.freed = nil
	}
	bg.mu.Unlock()
}

// budgetWait is how long after the bucket was last full, or a token last
// came back, a retry it cannot pay for waits for a token that a retry
// which succeeded gives back. The failures of one blip come together, more
// of them than the burst; the retries that repair them refund their tokens
// a pause and an exchange later, and the others follow, never more than
// the burst at a time, as long as tokens keep coming back. A retry that
// took a token and is still under way (its exchange slow, or its connect
// held up by the hop that blipped) may yet give it back: the wait goes on
// while one is. Once none is, and none came back for longer (a server that
// fails every request), a retry the bucket cannot pay for is denied at
// once.
const budgetWait = time.Second

// withdrawWait takes a token for a retry, waiting, within ctx and up to d
// after the bucket was last full or a token last came back, or while a
// retry that took one is under way, for one to come back; false when none
// did. While hold (nil: none) gives a later time, the tokens are held by
// retries waiting out a destination's failed connects, and it waits on
// until then. A token taken must be settled: by refund or settle.
func (bg *budget) withdrawWait(ctx context.Context, d time.Duration, hold func() time.Time) bool {
	if bg.withdraw() {
		return true
	}
	if bg.closed || ctx == nil {
		return false
	}
	left := func() time.Duration {
		l := bg.left(d)
		if hold != nil {
			l = max(l, time.Until(hold()))
		}
		return l
	}
	l := left()
	if l <= 0 {
		return false
	}
	bg.waiting.Add(1)
	defer bg.waiting.Add(-1)
	timer := time.NewTimer(l)
	defer timer.Stop()
	for {
		freed := bg.watch()
		if bg.withdraw() {
			return true
		}
		select {
		case <-freed:
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
		// A run of failed connects may have begun since, or the last
		// retry under way settled.
		l := left()
		if l <= 0 {
			return false
		}
		timer.Reset(l)
	}
}

// left returns how much longer a retry the bucket cannot pay for may wait
// for a token, or for an answer: up to d after the bucket was last full
// or a token last came back, or while a retry that took one is under way
// (looked at again when it settles). A token held by a retry that waits
// for an answer (see awaitAnswer) is not under way.
func (bg *budget) left(d time.Duration) time.Duration {
	l := time.Duration(max(bg.fullAt.Load(), bg.backAt.Load()) + int64(d) - mono())
	if bg.out.Load() > bg.carried.Load() {
		l = max(l, d)
	}
	return l
}

// answered records that work succeeded: while retries wait for a sign
// that the path is back (see awaitAnswer), it is one.
func (bg *budget) answered() {
	if bg.waiting.Load() > 0 {
		bg.answers.Add(1)
		bg.wake()
	}
}

// awaitAnswer waits, within ctx and as long as a retry may wait for a
// token (see left; the caller holds a token out, carried), until work succeeds;
// false when none did. A retry that met the blip again on arrival waits
// so before its work runs once more on the token it holds: only work that
// went through shows that the blip ended. Against a server that fails
// every request no token has come back for long: it does not wait, and
// the token pays for no more than one failed retry.
func (bg *budget) awaitAnswer(ctx context.Context, d time.Duration) bool {
	if ctx == nil {
		return false
	}
	bg.carried.Add(1)
	defer bg.carried.Add(-1)
	l := bg.left(d)
	if l <= 0 {
		return false
	}
	bg.waiting.Add(1)
	defer bg.waiting.Add(-1)
	seen := bg.answers.Load()
	timer := time.NewTimer(l)
	defer timer.Stop()
	for {
		freed := bg.watch()
		if bg.answers.Load() != seen {
			return true
		}
		select {
		case <-freed:
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
		if l = bg.left(d); l <= 0 {
			return false
		}
		timer.Reset(l)
	}
}

// withdraw takes a token for a retry, reporting false when there is none.
func (bg *budget) withdraw() bool {
	if bg.closed {
		return false
	}
	_, size := bg.params()
	for {
		l := bg.lack.Load()
		if l == 0 {
			bg.fullAt.Store(mono())
		}
		if l+1000 > size {
			return false
		}
		if bg.lack.CompareAndSwap(l, l+1000) {
			bg.out.Add(1)
			return true
		}
	}
}

// A Consumer hands out the connections of a pool that rstpool does not
// run (pgxpool, a driver's own pool) by the rules rstpool's own consumers
// follow: Checkout applies the checkout rule before a connection is handed
// out, and Use tells Retry which connections a piece of work uses. The
// rstpgx module is built on it.
//
// The zero value is usable. A Consumer is safe for concurrent use; its
// fields must not change after its first use.
type Consumer struct {
	// Source names the consumer in events ("pgx"). Zero: "consumer".
	Source string

	// Dialer gives the idle limit, the lifetime and the Observer. Nil: a
	// zero Dialer.
	Dialer *Dialer

	// IdleTimeout is the idleness at which Checkout retires a connection.
	// Zero: the Dialer's idle limit. Negative: none.
	IdleTimeout time.Duration

	// MaxLifetime is the age at which Checkout retires a connection. Zero:
	// the Dialer's. Negative: none.
	MaxLifetime time.Duration

	// PingAfter is the idleness beyond which Checkout pings a connection
	// even though a peek found it alive. Zero: DefaultPingAfter. Negative:
	// only when a peek cannot tell.
	PingAfter time.Duration

	// PingReadsPending says that the ping is the driver's own and skips
	// what the server sent unasked (pgx's Ping skips notices and
	// notifications): a connection with bytes pending is pinged, not
	// retired as out of step.
	PingReadsPending bool

	// Observer receives the retirements. Nil: the Dialer's Observer.
	Observer Observer

	once    sync.Once
	k       consumer
	lim     rule.Limits
	initErr error
}

// start resolves the Consumer's settings once.
func (c *Consumer) start() error {
	c.once.Do(func() {
		d := c.Dialer
		if d == nil {
			d = &Dialer{}
		}
		s, err := d.settings()
		if err != nil {
			c.initErr = err
			return
		}
		o := c.Observer
		if o == nil {
			o = s.observer
		}
		src := c.Source
		if src == "" {
			src = "consumer"
		}
		c.k.init(src, o, s, RetryBudget{})
		c.lim = rule.Limits{
			IdleLimit: orDefault(c.IdleTimeout, s.idleLimit), Lifetime: orDefault(c.MaxLifetime, s.maxLifetime),
			PingAfter: orDefault(c.PingAfter, DefaultPingAfter), CanPing: true, PingReadsPending: c.PingReadsPending,
		}
	})
	return c.initErr
}

// Checkout decides whether nc may be handed out for a piece of work under
// ctx, cheapest first: what is known without a syscall (a FIN already
// read, the lifetime, the idle limit), then a peek at its socket, then
// ping (the driver's ping; nil: none) only where a peek cannot know. It
// returns nil when nc may be handed out, and the piece of work begins
// there (ConnError.Written and Retry count from it); else the error that
// retires nc (ErrPeerClosed, ErrIdleLimit, ErrMaxLifetime,
// ErrUnsolicitedData, or the ping's), reported to the Observer, and the
// caller closes nc its own way. A ping canceled by ctx returns ctx's
// error and retires nothing. A connection no Dialer dialed is handed out
// unchecked. Settings that cannot work return their *ConfigError.
func (c *Consumer) Checkout(ctx context.Context, nc net.Conn, ping func(context.Context) error) error {
	if err := c.start(); err != nil {
		return err
	}
	tc := Tracked(nc)
	if tc == nil {
		c.Use(ctx, nc)
		return nil
	}
	now := mono()
	ck := checkout{facts: tc.facts(now, time.Duration(now-tc.lastActive()), nc), limit: c.lim, conn: tc}
	if ping != nil {
		ck.ping = pingFunc(ping)
	}
	_, err := c.k.checkout(ctx, &ck)
	if err == nil {
		handOut(ctx, tc, nc)
	}
	return err
}

// Use records that a piece of work under ctx uses nc, handed out before
// (a connection held across statements, as a pgx tracer sees it): Retry
// counts nc's bytes from here as the work's, or, when no Dialer dialed
// nc, knows that it cannot.
func (c *Consumer) Use(ctx context.Context, nc net.Conn) {
	noteHandout(ctx, Tracked(nc), nc)
}
