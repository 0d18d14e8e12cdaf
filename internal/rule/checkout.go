package rule

import "time"

// Health is what a peek at a connection's socket said. rstpool.Health
// takes its values from these.
type Health uint8

// The outcomes of a peek.
const (
	Unknown Health = iota // the peek could not tell
	Alive                 // nothing arrived
	Pending               // unread bytes, no FIN known behind them
	Closed                // the peer's FIN arrived
	Reset                 // an RST arrived, or the kernel gave up on a silent peer
)

// Conn is what a consumer knows of a connection it is about to hand out.
type Conn struct {
	Idle       time.Duration // since its last traffic, checkout or ping
	Age        time.Duration // since it was dialed
	PeerClosed bool          // a read already returned the peer's FIN
	Peekable   bool          // a tracked connection: its socket can be peeked at
	// Framed: a record layer (TLS) sits on the socket, whose own messages
	// (session tickets, key updates) may wait unread on a live connection.
	Framed bool
}

// Limits are the consumer's policy for handing a connection out.
type Limits struct {
	IdleLimit time.Duration // retire at or beyond this idleness; <= 0: none
	Lifetime  time.Duration // retire at or beyond this age; <= 0: none
	PeekAfter time.Duration // peek when idle at least this long; < 0: never
	PingAfter time.Duration // ping when idle at least this long; < 0: only when a peek cannot tell
	CanPing   bool          // the consumer has a ping
	// PingReadsPending: the ping is the driver's own and skips what the
	// server sent unasked (notices, notifications). Without it, bytes
	// nobody asked for mean a stream out of step, and the connection goes.
	PingReadsPending bool
}

// A Verdict is what to do with a connection at checkout.
type Verdict uint8

// The outcomes of Checkout, and PingFailed, the verdict on a connection
// whose ping failed. Each retiring verdict has one name, as events and
// counters report it.
const (
	Keep              Verdict = iota // hand it out
	Ping                             // ping it first; hand it out if the ping succeeds
	RetireIdleLimit                  // "idle-limit": idle beyond the idle limit
	RetireLifetime                   // "lifetime": older than its lifetime
	RetirePeerClosed                 // "peer-closed": the peer closed or reset it
	RetireUnsolicited                // "unsolicited-data": bytes nobody asked for are waiting
	RetirePingFailed                 // "ping-failed": its ping failed

	NumVerdicts
)

// Retires reports whether v retires the connection.
func (v Verdict) Retires() bool { return v >= RetireIdleLimit && v < NumVerdicts }

// Dead reports whether v retires a connection whose peer is gone or out of
// step, rather than one the client's own limits retire.
func (v Verdict) Dead() bool { return v >= RetirePeerClosed && v < NumVerdicts }

var verdictNames = [NumVerdicts]string{"keep", "ping", "idle-limit", "lifetime", "peer-closed", "unsolicited-data", "ping-failed"}

// String names the verdict; a retiring verdict by its reason.
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Doubting returns l for a checkout that doubts every connection idle for
// at least x (one idle that long was just found dead): such a connection
// is pinged first when canPing, else retired as past its idle limit.
func (l Limits) Doubting(x time.Duration, canPing bool) Limits {
	switch {
	case canPing && l.CanPing:
		if l.PingAfter < 0 || l.PingAfter > x {
			l.PingAfter = x
		}
	case l.IdleLimit <= 0 || l.IdleLimit > x:
		l.IdleLimit = x
	}
	return l
}

// Checkout decides, cheapest first, whether a connection may be handed out:
// what is known without a syscall, then a peek (about a microsecond; peek
// is called only when the idleness calls for it), then a ping (a round
// trip) only where the peek cannot know.
func Checkout(c Conn, l Limits, peek func() Health) Verdict {
	switch {
	case c.PeerClosed:
		return RetirePeerClosed
	case l.Lifetime > 0 && c.Age >= l.Lifetime:
		return RetireLifetime
	case l.IdleLimit > 0 && c.Idle >= l.IdleLimit:
		return RetireIdleLimit
	}
	if c.Peekable && l.PeekAfter >= 0 && c.Idle >= l.PeekAfter {
		switch peek() {
		case Closed, Reset:
			return RetirePeerClosed
		case Pending:
			switch {
			case l.CanPing && (l.PingReadsPending || c.Framed):
				return Ping
			case c.Framed:
				return Keep // a record layer's own messages: no evidence either way
			}
			return RetireUnsolicited
		case Unknown:
			if l.CanPing {
				return Ping
			}
		}
	}
	if l.CanPing && l.PingAfter >= 0 && c.Idle >= l.PingAfter {
		return Ping
	}
	return Keep
}
