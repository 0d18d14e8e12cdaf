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
}

// A Reason says why work may run again.
type Reason uint8

// The outcomes of Retry.
const (
	None           Reason = iota // not retried
	NothingWritten               // no byte of the work left: the server cannot have seen it
	Idempotent                   // it may have arrived, but a repeat has the effect of one
)

// Retry decides whether failed work may run once more, on a new connection.
func Retry(f Failure) Reason {
	switch {
	case f.Retried:
		return None // at most once
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
