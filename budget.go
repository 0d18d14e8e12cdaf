package rstpool

import "sync/atomic"

// Defaults of a RetryBudget.
const (
	// DefaultRetryRatio is the share of requests that may be retried over
	// time: with it, an outage or an overloaded server sees at most about
	// 1.1 times the load offered, as with gRPC's retry throttling and
	// Envoy's retry budget.
	DefaultRetryRatio = 0.1
	// DefaultRetryBurst is how many retries a full budget allows at once:
	// about the pooled connections a restart kills together.
	DefaultRetryBurst = 10
)

// A RetryBudget bounds the retries of a Transport or a Pool: a token bucket that holds Burst tokens, gains Ratio of
// a token with every request and loses one with every retry; a retry that
// succeeds gives its token back, since it replaced work the path lost
// rather than adding to a failing server's load. A retry the rule allows
// but the budget cannot pay for is not taken: the failure reaches the
// caller, counted and reported (EventRetryDenied). Over any stretch of N
// requests, at most Burst + Ratio × N retries fail. The zero value applies
// the defaults.
type RetryBudget struct {
	// Ratio is the share of requests that may be retried, in (0, 1].
	// Zero: DefaultRetryRatio. Negative: no retries at all.
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
	lack   atomic.Int64
	gain   int64 // per request; 0: the default
	size   int64 // 0: the default
	closed bool  // no retries at all
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

// refund gives back the token of a retry that succeeded: it did not add
// to the load of a failing server, it replaced a request the path lost.
func (bg *budget) refund() {
	for {
		l := bg.lack.Load()
		if l <= 0 || bg.lack.CompareAndSwap(l, max(l-1000, 0)) {
			return
		}
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
		if l+1000 > size {
			return false
		}
		if bg.lack.CompareAndSwap(l, l+1000) {
			return true
		}
	}
}
