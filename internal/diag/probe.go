package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// ProbeConfig says what to probe and how much it may cost.
type ProbeConfig struct {
	Addr  string // host:port
	Proto string // "tcp" (default: peek only), "http" or "redis"
	// Min and Max bound the idle durations tried; zero means 250ms and 10m.
	Min, Max time.Duration
	// Conns is the connection budget over both rounds; zero means 16.
	Conns int
	// Wait is how long an active check waits for the answer; zero means 2s.
	Wait time.Duration
	// Dialer opens the probe connections (its keepalive settings are
	// ignored: probes never send keepalives); nil means a zero net.Dialer.
	Dialer *net.Dialer
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
	AliveAt  time.Duration `json:"alive_at"`
	DeadAt   time.Duration `json:"dead_at"`
	Estimate time.Duration `json:"estimate"` // midpoint of the bounds; zero when none died
	End      End           `json:"end"`
	Conns    int           `json:"conns"` // connections used
	Elapsed  time.Duration `json:"elapsed"`
}

func (r ProbeResult) String() string {
	if r.End == EndNone {
		return fmt.Sprintf("no idle timeout up to %s: alive after %s idle; %d connections in %s",
			r.AliveAt.Round(time.Second), r.AliveAt.Round(time.Millisecond), r.Conns, r.Elapsed.Round(time.Millisecond))
	}
	return fmt.Sprintf("idle timeout ≈ %s in [%s, %s], ended by %s; %d connections in %s",
		r.Estimate.Round(time.Millisecond), r.AliveAt.Round(time.Millisecond), r.DeadAt.Round(time.Millisecond),
		r.End, r.Conns, r.Elapsed.Round(time.Millisecond))
}

var errPeerFIN = errors.New("peer closed the connection (FIN)")

func (c ProbeConfig) withDefaults() (ProbeConfig, error) {
	if c.Proto == "" {
		c.Proto = "tcp"
	}
	if _, ok := protocols[c.Proto]; !ok {
		return c, fmt.Errorf("probe: unknown protocol %q (want tcp, http or redis)", c.Proto)
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
	if c.Conns < 2 || c.Min <= 0 || c.Max < c.Min {
		return c, fmt.Errorf("probe: need conns ≥ 2 and 0 < min ≤ max")
	}
	return c, nil
}

func cmp0(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Probe measures the idle timeout of the path to cfg.Addr. A first round
// idles connections for geometrically spaced durations between Min and
// Max, watching all of them with a non-blocking peek so that a FIN or RST
// is seen when it arrives; each is also checked actively (a protocol no-op)
// when its duration is up, which finds silent drops. A second round refines
// between the last alive and the first dead duration when they are far apart.
func Probe(ctx context.Context, cfg ProbeConfig) (ProbeResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return ProbeResult{}, err
	}
	start := time.Now()
	k1 := min(cfg.Conns/2, 8)
	b, err := probeRound(ctx, cfg, geometric(cfg.Min, cfg.Max, k1))
	if err != nil {
		return ProbeResult{}, err
	}
	used := k1
	if b.end != EndNone && !b.tight() && cfg.Conns-used > 0 {
		k2 := cfg.Conns - used
		r2, err := probeRound(ctx, cfg, linear(b.alive, b.dead, k2))
		if err != nil {
			return ProbeResult{}, err
		}
		used += k2
		b.merge(r2)
	}
	res := ProbeResult{AliveAt: b.alive, DeadAt: b.dead, End: b.end, Conns: used, Elapsed: time.Since(start)}
	if b.end != EndNone {
		res.Estimate = (b.alive + b.dead) / 2
	}
	return res, nil
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
	if o.end != EndNone && o.dead < b.dead {
		b.dead, b.end = o.dead, o.end
	}
	if b.alive > b.dead {
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

// protocols are the active checks: send a no-op, read its answer.
var protocols = map[string]func(c net.Conn, br *bufio.Reader) error{
	"tcp":   func(net.Conn, *bufio.Reader) error { return nil },
	"http":  httpNoop,
	"redis": redisPing,
}

func httpNoop(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: rstpool-probe\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errPeerFIN // the server announced it closes: the next check would see EOF
	}
	return err
}

func redisPing(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis: unexpected answer %q", strings.TrimSpace(line))
	}
	return nil
}
