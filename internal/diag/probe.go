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
// idle and dead after DeadAt (zero: no death seen up to Max).
type ProbeResult struct {
	Addr        string
	Proto       string // the exchange used
	Detected    string // why auto chose Proto; empty when --proto named it
	Mode        string // what each probe connection sent
	Caveat      string // why the answer may not be the one a used connection meets; empty when it is
	Min, Max    time.Duration
	AliveAt     time.Duration
	DeadAt      time.Duration
	Estimate    time.Duration // midpoint of the bounds; zero when none died
	End         End
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

var errPeerFIN = errors.New("peer closed the connection (FIN)")

func (c ProbeConfig) withDefaults() (ProbeConfig, error) {
	if c.Proto == "" {
		c.Proto = "auto"
	}
	if _, ok := protocols[c.Proto]; !ok && c.Proto != "auto" {
		return c, fmt.Errorf("probe: unknown protocol %q (want %s)", c.Proto, protoNames)
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
// exchange (cfg.Proto, or detection for "auto"), then a first round idles
// connections for geometrically spaced durations between Min and Max after
// one exchange each, watching all of them with a non-blocking peek that
// sees a FIN or RST when it arrives; each is also checked actively when its
// duration is up, which finds silent drops. A second round refines between
// the last alive and the first dead duration when they are far apart.
//
// When ctx ends first, Probe returns the bracket measured so far with
// Interrupted set, and ctx's error.
func Probe(ctx context.Context, cfg ProbeConfig) (ProbeResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return ProbeResult{}, err
	}
	res := ProbeResult{Addr: cfg.Addr, Proto: cfg.Proto, Min: cfg.Min, Max: cfg.Max}
	if cfg.Proto == "auto" {
		if res.Proto, res.Detected, err = detect(ctx, cfg); err != nil {
			return res, err
		}
	}
	p := protocols[res.Proto]
	res.Mode, res.Caveat = p.mode, p.caveat
	r := &rounds{cfg: cfg, proto: p, start: time.Now()}
	b, err := r.run(ctx)
	res.AliveAt, res.DeadAt, res.End, res.Conns, res.Elapsed = b.alive, b.dead, b.end, r.used, time.Since(r.start)
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

// bounds are what a round learned.
type bounds struct {
	alive, dead time.Duration // dead zero: none died
	end         End
}

// tight reports whether the bounds are within 5% (or 20ms) of each other.
func (b bounds) tight() bool {
	return b.dead-b.alive <= max(b.dead/20, 20*time.Millisecond)
}

func (b *bounds) merge(o bounds) {
	b.alive = max(b.alive, o.alive)
	if o.end != EndNone && (b.end == EndNone || o.dead < b.dead) {
		b.dead, b.end = o.dead, o.end
	}
	if b.end != EndNone && b.alive > b.dead {
		b.alive = b.dead // the path is not exactly monotonic; keep the bounds ordered
	}
}

// endOf maps a check's error to how the flow ended.
func endOf(err error) End {
	var ne net.Error
	switch {
	case errors.Is(err, errPeerFIN), errors.Is(err, io.EOF):
		return EndFIN
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return EndRST
	case errors.As(err, &ne) && ne.Timeout():
		return EndSilent
	}
	return EndRST
}
