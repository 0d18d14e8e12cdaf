// Package rule holds the two decisions every rstpool consumer makes: whether
// failed work may run once more on a new connection (Retry), and what to do
// with a connection about to be handed out (Checkout). Each is one short,
// ordered function over plain facts; neither knows which consumer asks
// (Transport, Pool, WrapConnector, rstpgx, rstpool.Retry).
package rule

// A Failure is what a consumer knows of work that failed.
type Failure struct {
	// Retried: the work already ran a second time.
	Retried bool
	// CallerDone: the caller's context ended.
	CallerDone bool
	// ConnFailure: the connection failed under the work (a reset, a broken
	// pipe, an end of stream, a refused connect) or the client retired it
	// before the work left. An answer of the server or an error of the
	// application is not one.
	ConnFailure bool
	// Replayable: the work can be sent again (an HTTP body that can be
	// rewound).
	Replayable bool
	// NothingLeft: provably no byte of the work left the client.
	NothingLeft bool
	// Answered: a byte of the answer to the work had arrived when it failed.
	Answered bool
	// Idempotent: running the work twice has the effect of running it once.
	Idempotent bool

	// Stale: the work ran on a reused connection that gave nothing back
	// after it sat idle: the path lost the connection, not the server the
	// work.
	Stale bool
	// ConnectReset: the work's new connection was reset or closed before
	// the peer took or sent a byte: whatever accepted it refused it, like a
	// refused connect.
	ConnectReset bool
	// ResetOnArrival: the work's new connection was reset or closed before
	// the peer sent a byte, after it took bytes of the work: a proxy with
	// no healthy upstream, or a blip of the path still under way.
	ResetOnArrival bool
	// ArrivalBudgetLeft: the work's new connections have been reset on
	// arrival for less than the connect's budget (a Dialer's RefusedRetry),
	// counted from the first: a blip of the path may last that long, as a
	// restart may.
	ArrivalBudgetLeft bool
}

// A Reason says why work may run again.
type Reason uint8

// The outcomes of Retry.
const (
	None           Reason = iota // not retried
	NothingWritten               // no byte of the work left: the server cannot have seen it
	Idempotent                   // it may have arrived, but a repeat has the effect of one
)

// A Wait says when work that may run again goes.
type Wait uint8

// The waits of a Decision.
const (
	Pause  Wait = iota // after a jittered pause: a blip of the path passes first
	Redial             // after the backoff of a refused connect, within its budget
)

// A Decision is whether failed work runs again, when, and whether a retry
// budget pays for it.
type Decision struct {
	Reason Reason
	Wait   Wait
	// Free: no retry budget pays. A retry that replaces work a stale
	// connection lost adds nothing to a server's load, and a new
	// connection refused before its first answer is a refused connect,
	// bounded by the connect's own budget. A budget bounds load, not
	// repair.
	Free bool
}

// Retry decides whether failed work may run once more, on a new
// connection, and how. No failure says for sure that the path is fine
// again: a blip (a proxy reload, a flapping link) closes idle connections
// as a hop's idle timer does, and a retry at once would meet it again, so
// every retry waits the pause, or the backoff of a refused connect.
func Retry(f Failure) Decision {
	r := reason(f)
	if r == None {
		return Decision{}
	}
	d := Decision{Reason: r, Wait: Pause, Free: f.Stale}
	if f.ConnectReset {
		d.Wait, d.Free = Redial, true
	}
	return d
}

// reason is the rule itself: whether the work may run again, and why.
func reason(f Failure) Reason {
	switch {
	case f.Retried && !f.ConnectReset && !(f.ResetOnArrival && f.Idempotent && f.ArrivalBudgetLeft):
		// At most once, but for a connect refused before its first answer,
		// and idempotent work whose retries meet a blip on arrival, for
		// as long as a refused connect would be retried.
		return None
	case f.CallerDone:
		return None // the caller gave up
	case !f.ConnFailure:
		return None // the server answered, or the application failed: a repeat gets the same
	case !f.Replayable:
		return None // the work cannot be sent again
	case f.NothingLeft:
		return NothingWritten // the server cannot have seen it
	case f.Answered:
		return None // the server began to answer: it ran the work, and the answer is lost
	case f.Idempotent:
		return Idempotent // a repeat has the effect of one (RFC 9110, 9.2.2)
	}
	return None // conservatively
}
