package diag

import (
	"context"

	"github.com/rstpool/rstpool"
)

// A Session is one probe connection, opened and used once (a request; a
// login and a statement), then left idle while the probe watches it.
type Session interface {
	// Tracked is the connection under the session: the probe peeks at it
	// (rstpool.Conn.Check), which tells a FIN or an RST as it arrives
	// without sending anything. Nil: only Exchange sees the end.
	Tracked() *rstpool.Conn
	// Exchange uses the session once more when its idle time is up. The
	// connection may be dead by then: an error is the end of the flow that
	// the probe measures, not a failure. An error that wraps ErrPeerFIN is
	// reported as a FIN. ctx carries the probe's Wait as its deadline.
	Exchange(ctx context.Context) error
	// Farewell returns what the server wrote before it closed the session,
	// without sending anything; "" when it said nothing or the session
	// cannot read it. The probe calls it once, when it sees the session
	// end with a FIN.
	Farewell(ctx context.Context) string
	// Close closes the session.
	Close() error
}

// Sessions opens probe sessions of a protocol: a database driver's login
// and one statement, for instance, or one of the probe's own exchanges.
type Sessions struct {
	Name   string // the protocol, for the result ("postgres")
	Mode   string // what each session sends, for the result
	Caveat string // why the answer may not be the timeout a used connection meets; "" when it is
	// Open dials through d, the probe's dialer (no keepalive, no checks
	// of its own), makes the session's first exchange and returns the
	// session, or why it could not. Its idle time starts when Open
	// returns.
	Open func(ctx context.Context, d *rstpool.Dialer) (Session, error)
}
