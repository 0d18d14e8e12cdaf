package diag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"time"
)

// ProbeConfig says what to probe and how much it may cost.
type ProbeConfig struct {
	Addr string // host:port
	// Proto is the exchange each probe connection makes: "auto" (the
	// default: detect HTTP, RESP, PostgreSQL or MySQL), "tcp" (none, peeks
	// only), "http", "redis", "postgres" or "mysql".
	Proto string
	// Min and Max bound the idle durations tried; zero means 250ms and 10m.
	Min, Max time.Duration
	// Conns is the connection budget over both rounds; zero means 16.
	Conns int
	// Wait is how long an exchange waits for its answer; zero means 2s.
	Wait time.Duration
	// Dialer opens the probe connections (its keepalive settings are
	// ignored: probes never send keepalives); nil means a zero net.Dialer.
	Dialer *net.Dialer
	// Sessions, when set, opens each probe connection in place of a dial
	// and Proto's exchange: a database driver's login and one statement,
	// for instance. Proto is then ignored.
	Sessions *Sessions
	// Progress, if set, is called with the bracket measured so far when it
	// changes and at least every second while the probe waits.
	Progress func(ProbeProgress)
}

// ProbeProgress is the bracket measured so far: no end seen after Alive
// of idle, an end seen after Dead (zero: none yet, the bracket is open up
// to Max).
type ProbeProgress struct {
	Round       int
	Alive, Dead time.Duration
	Idling      int // probe connections still idling
	Elapsed     time.Duration
}

// End is how a path ends an idle flow.
type End uint8

// How a flow ended.
const (
	EndNone   End = iota // no end seen up to Max
	EndFIN               // the peer or a proxy closed it
	EndRST               // a reset
	EndSilent            // no answer: a middlebox dropped the flow, or the peer hung
)

func (e End) String() string {
	return [...]string{"none", "FIN", "RST", "silent drop"}[e]
}

// MarshalText encodes the end by name.
func (e End) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// ProbeResult is a measured idle timeout: the flow was alive after AliveAt
// idle and dead after DeadAt (zero: no death seen up to Max). When flows
// end after different idle times, DeadAt is the shortest seen, AliveAt the
// longest idle below it that a flow survived, and Outlived the longest
// idle above it that another flow survived.
type ProbeResult struct {
	Addr     string
	Proto    string // the exchange used
	Detected string // why auto chose Proto; empty when --proto named it
	Mode     string // what each probe connection sent
	Caveat   string // why the answer may not be the one a used connection meets; empty when it is
	Min, Max time.Duration
	AliveAt  time.Duration
	DeadAt   time.Duration
	Estimate time.Duration // midpoint of the bounds; zero when none died
	End      End
	// Outlived is the longest idle a flow was seen to survive beyond
	// DeadAt (zero: none did): the path ends idle flows after different
	// idle times, as a server that sweeps its idle sessions periodically
	// does.
	Outlived time.Duration
	// Farewell is what the server wrote before closing a session, as the
	// session read it (Session.Farewell); empty when it said nothing or
	// the session does not read it.
	Farewell    string
	Conns       int // connections used
	Elapsed     time.Duration
	Interrupted bool // the context ended before the probe did: the bounds are those measured so far
}

func (r ProbeResult) String() string {
	switch {
	case r.Interrupted && r.End == EndNone:
		return fmt.Sprintf("interrupted after %s: no end seen up to %s idle (the timeout, if any, is above it); %d connections",
			r.Elapsed.Round(time.Millisecond), r.AliveAt.Round(time.Millisecond), r.Conns)
	case r.End == EndNone:
		return fmt.Sprintf("no idle timeout up to --max %s: alive after %s idle; %d connections in %s",
			r.Max, r.AliveAt.Round(time.Millisecond), r.Conns, r.Elapsed.Round(time.Millisecond))
	}
	s := fmt.Sprintf("idle timeout ≈ %s in [%s, %s], ended by %s; %d connections in %s",
		r.Estimate.Round(time.Millisecond), r.AliveAt.Round(time.Millisecond), r.DeadAt.Round(time.Millisecond),
		r.End, r.Conns, r.Elapsed.Round(time.Millisecond))
	if r.Interrupted {
		s = "interrupted, bracket so far: " + s
	}
	return s
}

// ErrPeerFIN says that the peer closed the connection (a FIN): a
// Session's Exchange wraps it when the server ended the session, and the
// probe reports the end as FIN.
var ErrPeerFIN = errors.New("peer closed the connection (FIN)")

func (c ProbeConfig) withDefaults() (ProbeConfig, error) {
	if c.Proto == "" {
		c.Proto = "auto"
	}
	if _, ok := protocols[c.Proto]; !ok && c.Proto != "auto" && c.Sessions == nil {
		return c, fmt.Errorf("probe: unknown protocol %q (want %s)", c.Proto, protoNames)
	}
	if c.Sessions != nil && c.Sessions.Open == nil {
		return c, errors.New("probe: Sessions without Open")
	}
	c.Min = cmp0(c.Min, 250*time.Millisecond)
	c.Max = cmp0(c.Max, 10*time.Minute)
	c.Wait = cmp0(c.Wait, 2*time.Second)
	if c.Conns == 0 {
		c.Conns = 16
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.Conns < 2 || c.Min <= 0 || c.Max < c.Min || c.Wait <= 0 {
		return c, fmt.Errorf("probe: need conns ≥ 2, 0 < min ≤ max and wait > 0")
	}
	return c, nil
}

func cmp0(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Probe measures the idle timeout of the path to cfg.Addr. It picks the
// exchange (cfg.Sessions, cfg.Proto, or detection for "auto"), then a
// first round idles connections for geometrically spaced durations between
// Min and Max after one exchange each, watching all of them with a
// non-blocking peek that sees a FIN or RST when it arrives; each is also
// checked actively when its duration is up, which finds silent drops. A
// round ends once every connection still idling has idled past the
// shortest end seen. A second round refines between the last alive and the
// first dead duration when they are far apart.
//
// A round starts its connections one after another over min(Min, 1s),
// at most four opening at once, so that a server that sweeps its idle
// sessions periodically (PgBouncer three times a second, Redis ten times)
// meets them at different points of its sweep, and the shortest end seen
// is close to the timeout itself.
//
// When ctx ends first, Probe returns the bracket measured so far with
// Interrupted set, and ctx's error.
func Probe(ctx context.Context, cfg ProbeConfig) (ProbeResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return ProbeResult{}, err
	}
	res := ProbeResult{Addr: cfg.Addr, Proto: cfg.Proto, Min: cfg.Min, Max: cfg.Max}
	if cfg.Sessions == nil && cfg.Proto == "auto" {
		if res.Proto, res.Detected, err = detect(ctx, cfg); err != nil {
			return res, err
		}
	}
	s := cfg.Sessions
	if s == nil {
		s = protocols[res.Proto].sessions(cfg, res.Proto)
	}
	res.Proto, res.Mode, res.Caveat = s.Name, s.Mode, s.Caveat
	r := &rounds{cfg: cfg, sessions: s, dialer: probeDialer(cfg.Dialer), start: time.Now()}
	err = r.run(ctx)
	b := r.bounds()
	res.AliveAt, res.DeadAt, res.End, res.Outlived = b.alive, b.dead, b.end, b.outlived
	res.Farewell, res.Conns, res.Elapsed = r.farewell, r.used, time.Since(r.start)
	if b.end != EndNone {
		res.Estimate = (b.alive + b.dead) / 2
	}
	res.Interrupted = err != nil && ctx.Err() != nil
	return res, err
}

// geometric returns k durations from lo to hi with a constant ratio.
func geometric(lo, hi time.Duration, k int) []time.Duration {
	out := make([]time.Duration, k)
	ratio := 1.0
	if k > 1 {
		ratio = math.Pow(float64(hi)/float64(lo), 1/float64(k-1))
	}
	for i := range out {
		out[i] = time.Duration(math.Round(float64(lo) * math.Pow(ratio, float64(i))))
	}
	out[k-1] = hi
	return out
}

// linear returns k durations evenly spaced strictly between lo and hi.
func linear(lo, hi time.Duration, k int) []time.Duration {
	out := make([]time.Duration, k)
	for i := range out {
		out[i] = lo + (hi-lo)*time.Duration(i+1)/time.Duration(k+1)
	}
	return out
}

// bounds are what the rounds learned: the shortest end seen (dead, end;
// zero and EndNone when none), the longest idle survived below it (alive)
// and above it (outlived).
type bounds struct {
	alive, dead time.Duration
	end         End
	outlived    time.Duration
}

// tight reports whether the bounds are within 5% (or 20ms) of each other.
func (b bounds) tight() bool {
	return b.dead-b.alive <= max(b.dead/20, 20*time.Millisecond)
}

// endOf maps a check's error to how the flow ended; known is false when
// the error does not say (a driver's own error for a broken connection).
func endOf(err error) (e End, known bool) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrPeerFIN), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EndFIN, true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return EndRST, true
	case errors.As(err, &ne) && ne.Timeout():
		return EndSilent, true
	}
	return EndRST, false
}
