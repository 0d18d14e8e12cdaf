package diag

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

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

func TestProbeHTTPServerIdleTimeoutFIN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{IdleTimeout: 300 * time.Millisecond, Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	r, err := Probe(context.Background(), probeFast(ln.Addr().String(), "http"))
	require.NoError(t, err)
	require.Equal(t, EndFIN, r.End, r.String())
	t.Log(r)
	requireWithin(t, r, 300*time.Millisecond)
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

	_, err = Probe(context.Background(), ProbeConfig{Addr: addr, Proto: "smtp"})
	require.ErrorContains(t, err, "unknown protocol")

	s := startPingServer(t, time.Hour, false)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Probe(ctx, ProbeConfig{Addr: s.ln.Addr().String(), Max: time.Minute})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestGeometricAndLinear(t *testing.T) {
	g := geometric(time.Second, 8*time.Second, 4)
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, g)
	require.Equal(t, []time.Duration{2 * time.Second, 3 * time.Second}, linear(time.Second, 4*time.Second, 2))
}
