package diag

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// pingServer is a loopback server speaking "PING" → "+PONG". A connection
// idle for longer than idle is reset (SetLinger(0)) or, when silent, kept
// open but never answered again.
type pingServer struct {
	ln     net.Listener
	idle   time.Duration
	silent bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startPingServer(t *testing.T, idle time.Duration, silent bool) *pingServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &pingServer{ln: ln, idle: idle, silent: silent}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *pingServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c.(*net.TCPConn))
	}
}

func (s *pingServer) serve(c *net.TCPConn) {
	defer s.wg.Done()
	br := bufio.NewReader(c)
	mute := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.idle)) // a closed conn fails the read below
		_, err := br.ReadString('\n')
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if !s.silent {
				c.SetLinger(0) // a real RST
				c.Close()
				return
			}
			mute = true
			_ = c.SetReadDeadline(time.Time{})
			_, err = br.ReadString('\n')
		}
		if err != nil {
			return
		}
		if !mute {
			c.Write([]byte("+PONG\r\n"))
		}
	}
}

func (s *pingServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func probeFast(addr, proto string) ProbeConfig {
	return ProbeConfig{Addr: addr, Proto: proto, Min: 50 * time.Millisecond, Max: 3 * time.Second, Conns: 10, Wait: 200 * time.Millisecond}
}

// requireWithin checks that the measured bounds bracket the server's idle
// timeout, give or take 10% for the lag between the server's timer firing
// and the probe seeing its effect.
func requireWithin(t *testing.T, r ProbeResult, want time.Duration) {
	t.Helper()
	require.LessOrEqual(t, r.AliveAt, want+want/10, r.String())
	require.GreaterOrEqual(t, r.DeadAt, want-want/10, r.String())
	require.InDelta(t, float64(want), float64(r.Estimate), float64(want)/5, r.String())
}

// goServer is a Go http.Server with an idle timeout on loopback: it
// starts the timer only after a request.
func goServer(t *testing.T, idle time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{IdleTimeout: idle, Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// The default mode detects HTTP and so measures the keep-alive a used
// connection meets (issue 12: the old default ran to --max and answered
// "no idle timeout" against this server).
func TestProbeDetectsHTTPByDefault(t *testing.T) {
	cfg := probeFast(goServer(t, 300*time.Millisecond), "")
	cfg.Max = time.Second
	var seen []ProbeProgress
	cfg.Progress = func(p ProbeProgress) { seen = append(seen, p) }
	r, err := Probe(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, "http", r.Proto)
	require.Contains(t, r.Detected, "answered http")
	require.Empty(t, r.Caveat, "an HTTP exchange measures what a used connection meets")
	require.Equal(t, EndFIN, r.End, r.String())
	t.Log(r)
	requireWithin(t, r, 300*time.Millisecond)
	require.NotEmpty(t, seen, "progress reported")
	require.Equal(t, r.DeadAt, seen[len(seen)-1].Dead, "the last progress shows the bracket found")
}

// Without a request the same server never closes: tcp mode says so.
func TestProbeTCPModeSaysWhyItMayBeWrong(t *testing.T) {
	cfg := probeFast(goServer(t, 200*time.Millisecond), "tcp")
	cfg.Max = 600 * time.Millisecond
	r, err := Probe(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, EndNone, r.End, "Go's server times only connections that made a request")
	require.Contains(t, r.Caveat, "No request was sent")
	require.Contains(t, r.String(), "no idle timeout up to --max 600ms")
}

func TestProbeServerResetsIdle(t *testing.T) {
	s := startPingServer(t, 400*time.Millisecond, false)
	r, err := Probe(context.Background(), probeFast(s.ln.Addr().String(), "redis"))
	require.NoError(t, err)
	require.Equal(t, EndRST, r.End, r.String())
	t.Log(r)
	requireWithin(t, r, 400*time.Millisecond)
}

func TestProbeSilentServer(t *testing.T) {
	s := startPingServer(t, 500*time.Millisecond, true)
	r, err := Probe(context.Background(), probeFast(s.ln.Addr().String(), "redis"))
	require.NoError(t, err)
	require.Equal(t, EndSilent, r.End, r.String())
	t.Log(r)
	requireWithin(t, r, 500*time.Millisecond)
	require.Equal(t, 10, r.Conns, "a silent drop needs the refining round")
}

func TestProbeNoTimeoutUpToMax(t *testing.T) {
	s := startPingServer(t, time.Hour, false)
	cfg := probeFast(s.ln.Addr().String(), "tcp")
	cfg.Max = 300 * time.Millisecond
	r, err := Probe(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, EndNone, r.End)
	require.GreaterOrEqual(t, r.AliveAt, 300*time.Millisecond)
	require.Contains(t, r.String(), "no idle timeout up to")
}

func TestProbeErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // a real refusal
	_, err = Probe(context.Background(), probeFast(addr, "tcp"))
	require.ErrorContains(t, err, "refused")

	require.NotContains(t, err.Error(), "rstpool:", "the net error's own words")
	require.ErrorAs(t, err, new(*rstpool.ConnError), "the ConnError stays in the chain")

	_, err = Probe(context.Background(), ProbeConfig{Addr: addr, Proto: "smtp"})
	require.ErrorContains(t, err, "unknown protocol")
}

// An interrupted probe returns the bracket measured so far.
func TestProbeInterruptedKeepsTheBracket(t *testing.T) {
	s := startPingServer(t, time.Hour, false)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	r, err := Probe(ctx, ProbeConfig{Addr: s.ln.Addr().String(), Proto: "redis", Min: 50 * time.Millisecond, Max: time.Minute})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, r.Interrupted)
	require.Equal(t, EndNone, r.End)
	require.Greater(t, r.AliveAt, 250*time.Millisecond, "no end seen for most of the 400ms")
	require.Contains(t, r.String(), "interrupted after")
}

// service returns the address of a local server, or skips the test (fails
// it when RSTPOOL_REQUIRE_SERVICES=1) when nothing listens there.
func service(t *testing.T, name, addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s at %s unreachable: %v", name, addr, err)
		}
		t.Skipf("%s at %s unreachable (%v): start it (.ci/run starts the local servers), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", name, addr, err)
	}
	c.Close()
	return addr
}

// Detection and the first exchange against the real servers of this
// machine; none reaps within the short --max.
func TestProbeDetectsRealServers(t *testing.T) {
	for _, tc := range []struct{ name, addr, proto string }{
		{"Redis", "127.0.0.1:6379", "redis"},
		{"PostgreSQL", "127.0.0.1:5432", "postgres"},
		{"MariaDB", "127.0.0.1:3306", "mysql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ProbeConfig{Addr: service(t, tc.name, tc.addr), Min: 50 * time.Millisecond, Max: 300 * time.Millisecond,
				Conns: 2, Wait: time.Second}
			r, err := Probe(context.Background(), cfg)
			require.NoError(t, err)
			require.Equal(t, tc.proto, r.Proto, r.Detected)
			require.Equal(t, EndNone, r.End, r.String())
			if tc.proto != "redis" {
				require.Contains(t, r.Caveat, "Before login", "a pre-login timer is not the session's")
			}
		})
	}
}

func TestDetectUnknownProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() { // reads and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = c.Read(make([]byte, 64)); <-time.After(2 * time.Second); c.Close() }()
		}
	}()
	name, why, err := detect(context.Background(), ProbeConfig{Addr: ln.Addr().String(), Wait: 200 * time.Millisecond, Dialer: &net.Dialer{}})
	require.NoError(t, err)
	require.Equal(t, "tcp", name)
	require.Contains(t, why, "no HTTP, RESP, PostgreSQL or MySQL answer")
	require.False(t, errors.Is(err, context.Canceled))
}

func TestGeometricAndLinear(t *testing.T) {
	g := geometric(time.Second, 8*time.Second, 4)
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, g)
	require.Equal(t, []time.Duration{2 * time.Second, 3 * time.Second}, linear(time.Second, 4*time.Second, 2))
}

// sweepServer answers "PING" with "+PONG" and, like PgBouncer's janitor
// or Redis's cron, closes the connections idle for idle or longer on a
// sweep every period, after writing "-ERR idle" to each: a connection is
// closed after between idle and idle + period.
func sweepServer(t *testing.T, idle, period time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	last := map[net.Conn]time.Time{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			last[c] = time.Now()
			mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				for {
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
					mu.Lock()
					last[c] = time.Now()
					mu.Unlock()
					c.Write([]byte("+PONG\r\n"))
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			mu.Lock()
			for c, at := range last {
				if time.Since(at) >= idle {
					c.Write([]byte("-ERR idle\r\n"))
					c.Close()
					delete(last, c)
				}
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(done)
		wg.Wait()
		mu.Lock()
		for c := range last {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// A server that sweeps its idle connections periodically closes them
// after different idle times: the probe staggers its connections over the
// sweep, watches each until it has idled past the shortest end seen, and
// reports that shortest, close to the timeout, and how long another
// connection outlived it.
func TestProbeSweepingServer(t *testing.T) {
	addr := sweepServer(t, 500*time.Millisecond, 200*time.Millisecond)
	cfg := ProbeConfig{Addr: addr, Proto: "redis", Min: 300 * time.Millisecond, Max: 1200 * time.Millisecond, Conns: 16, Wait: time.Second}
	r, err := Probe(context.Background(), cfg)
	require.NoError(t, err)
	t.Log(r, "; outlived ", r.Outlived)
	require.Equal(t, EndFIN, r.End)
	require.GreaterOrEqual(t, r.DeadAt, 500*time.Millisecond, r.String())
	// Connections staggered over 300ms meet the 200ms sweep at phases at
	// most 2 × 37.5ms apart: the shortest end is within 75ms (15%) of the
	// timeout, where one phase alone could be 200ms (40%) late.
	require.LessOrEqual(t, r.Estimate, 575*time.Millisecond, r.String())
	require.Greater(t, r.Outlived, r.DeadAt, "another connection was seen to outlive the shortest end")
	require.Empty(t, r.Farewell, "a raw session does not read a farewell")
}

// farewellSession is a Session of the test's own over a sweepServer
// connection: it reads the "-ERR" line the server writes before closing.
type farewellSession struct{ rawSession }

func (s *farewellSession) Farewell(ctx context.Context) string {
	deadline, _ := ctx.Deadline()
	_ = s.c.SetReadDeadline(deadline)
	line, _ := s.br.ReadString('\n')
	return line
}

// Sessions of the caller's own go through the same rounds; the first
// farewell read is reported, and the result names the caller's mode.
func TestProbeCustomSessions(t *testing.T) {
	addr := sweepServer(t, 300*time.Millisecond, 20*time.Millisecond)
	var opened atomic.Int64
	sessions := &Sessions{Name: "custom", Mode: "PING after connect",
		Open: func(ctx context.Context, d *rstpool.Dialer) (Session, error) {
			opened.Add(1)
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			s := &farewellSession{rawSession{c: c, tc: c.(*rstpool.Conn), br: bufio.NewReader(c), again: redisPing}}
			return s, redisPing(c, s.br)
		}}
	r, err := Probe(context.Background(), ProbeConfig{Addr: addr, Sessions: sessions, Min: 100 * time.Millisecond,
		Max: 600 * time.Millisecond, Conns: 8, Wait: time.Second})
	require.NoError(t, err)
	t.Log(r)
	require.Equal(t, "custom", r.Proto)
	require.Equal(t, "PING after connect", r.Mode)
	require.Equal(t, EndFIN, r.End)
	require.Equal(t, "-ERR idle\r\n", r.Farewell)
	require.EqualValues(t, opened.Load(), r.Conns)
	requireWithin(t, r, 310*time.Millisecond)

	_, err = Probe(context.Background(), ProbeConfig{Addr: addr, Sessions: &Sessions{Name: "none"}})
	require.ErrorContains(t, err, "Sessions without Open")
}
