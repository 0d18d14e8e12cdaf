package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// resetOutcomes sends 4000 bytes on each of n sequential connections and
// reports which ones were reset.
func resetOutcomes(t *testing.T, cfg Config, n int) ([]bool, Stats) {
	up := startEcho(t)
	p := startProxy(t, cfg, up.addr())
	out := make([]bool, n)
	for i := range out {
		c := dial(t, p.Addr())
		_, err := c.Write(make([]byte, 4000))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		n, err := io.ReadFull(c, make([]byte, 4000))
		out[i] = isReset(err)
		if out[i] {
			require.LessOrEqual(t, n, int(cfg.ResetAfterBytes))
		} else {
			require.NoError(t, err, "connection %d", i)
		}
		_ = c.Close()
	}
	return out, p.Stats()
}

func TestMidTransferResetFractionIsSeeded(t *testing.T) {
	cfg := Config{ResetAfterBytes: 1000, ResetFraction: 0.3, Seed: 42}
	const n = 50
	first, st := resetOutcomes(t, cfg, n)
	second, _ := resetOutcomes(t, cfg, n)
	require.Equal(t, first, second, "same seed, same connections reset")

	// The choice is the documented one: the first of two draws per connection.
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15))
	want := make([]bool, n)
	resets := int64(0)
	for i := range want {
		want[i] = rng.Float64() < cfg.ResetFraction
		rng.Float64()
		if want[i] {
			resets++
		}
	}
	require.Equal(t, want, first)
	require.Equal(t, resets, st.MidTransferResets)
	require.Greater(t, resets, int64(0))
	require.Less(t, resets, int64(n))
}

func TestMidTransferResetExactBytesDown(t *testing.T) {
	const limit = 10_000
	up := startServer(t, func(c *net.TCPConn) {
		_, _ = c.Write(make([]byte, 1<<20))
	})
	p := startProxy(t, Config{ResetAfterBytes: limit, ResetDirection: Down}, up.addr())
	got, err := dialAndRead(p.Addr())
	require.True(t, isReset(err), "want ECONNRESET, got %v", err)
	require.LessOrEqual(t, len(got), limit)
	st := p.Stats()
	require.Equal(t, int64(limit), st.BytesDown, "exactly the threshold forwarded")
	require.Equal(t, int64(1), st.MidTransferResets)
}

func TestEarlyCloseWithUnreadBody(t *testing.T) {
	resp := []byte("HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n")
	up := startEcho(t)
	p := startProxy(t, Config{EarlyResponse: resp, EarlyAfterBytes: 64 << 10}, up.addr())
	c := dial(t, p.Addr())
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(5*time.Second)))
	_, werr := c.Write(make([]byte, 32<<20)) // far more than the socket buffers hold
	require.True(t, isReset(werr) || errors.Is(werr, syscall.EPIPE),
		"the body write must fail with a reset or a broken pipe, got %v", werr)
	got, rerr := readErr(c, 2*time.Second)
	require.True(t, bytes.HasPrefix(resp, got), "only the canned response may arrive: %q", got)
	require.True(t, isReset(rerr) || errors.Is(rerr, io.EOF), "got %v", rerr)
	st := p.Stats()
	require.Equal(t, int64(1), st.EarlyCloses)
	require.Equal(t, int64(0), st.BytesUp, "the body never reaches the upstream")
	t.Logf("read %d of %d response bytes; write: %v; read: %v", len(got), len(resp), werr, rerr)
}

func TestBlackHoleToggle(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	p.BlackHole(true)
	_, err := c.Write([]byte("lost"))
	require.NoError(t, err)
	_, err = readErr(c, 100*time.Millisecond)
	require.True(t, isTimeout(err), "want a read timeout, got %v", err)
	late := dial(t, p.Addr()) // new flows fall into the hole too
	_, err = late.Write([]byte("lost too"))
	require.NoError(t, err)
	_, err = readErr(late, 100*time.Millisecond)
	require.True(t, isTimeout(err), "want a read timeout, got %v", err)
	p.BlackHole(false)
	roundTrip(t, c, "after")
	roundTrip(t, late, "after")
	require.Equal(t, int64(len("lost")+len("lost too")), p.Stats().BytesDiscarded)
}

func TestResetAll(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, a, "a")
	roundTrip(t, b, "b")
	p.ResetAll()
	for _, c := range []net.Conn{a, b} {
		_, err := readErr(c, 2*time.Second)
		require.True(t, isReset(err), "want ECONNRESET, got %v", err)
	}
	require.Equal(t, int64(2), p.Stats().FlowsReset)
	roundTrip(t, dial(t, p.Addr()), "new flows work")
}

func TestMaxConnsResetsExtraConnections(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{MaxConns: 1}, up.addr())
	first := dial(t, p.Addr())
	roundTrip(t, first, "in")
	requireResetAtOnce(t, p.Addr())
	require.Equal(t, int64(1), p.Stats().Rejected)
	roundTrip(t, first, "still in")
}

func TestUnreachableUpstreamResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	p := startProxy(t, Config{}, closed)
	requireResetAtOnce(t, p.Addr())
	require.Equal(t, int64(1), p.Stats().DialFailures)
}

// requireResetAtOnce connects to addr and expects an RST: the kernel completes
// the handshake, so the RST arrives either before connect returns or on read.
func requireResetAtOnce(t *testing.T, addr string) {
	t.Helper()
	_, err := dialAndRead(addr)
	require.True(t, isReset(err), "want ECONNRESET, got %v", err)
}

// dialAndRead connects to addr and reads until an error. An RST that comes
// before connect returns is the dial's error.
func dialAndRead(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return readErr(c, 2*time.Second)
}

func TestUpstreamResetPropagates(t *testing.T) {
	up := startServer(t, func(c *net.TCPConn) {
		buf := make([]byte, 4)
		_, _ = io.ReadFull(c, buf)
		_ = c.SetLinger(0) // the server crashes mid-conversation
	})
	p := startProxy(t, Config{}, up.addr())
	c := dial(t, p.Addr())
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = readErr(c, 2*time.Second)
	require.True(t, isReset(err), "want ECONNRESET, got %v", err)
}

func TestEarlyFractionIsSeededAndShortRequestsAnswered(t *testing.T) {
	resp := "HTTP/1.1 503 Service Unavailable\r\n\r\n"
	cfg := Config{EarlyResponse: []byte(resp), EarlyAfterBytes: 1 << 20, EarlyFraction: 0.5, Seed: 7}
	up := startEcho(t)
	p := startProxy(t, cfg, up.addr())
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15))
	var early int64
	for i := range 20 {
		rng.Float64()
		chosen := rng.Float64() < cfg.EarlyFraction // the second draw
		c := dial(t, p.Addr())
		_, err := c.Write([]byte("hello"))
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		got, err := readErr(c, 2*time.Second)
		require.ErrorIs(t, err, io.EOF, "connection %d", i)
		if chosen {
			early++
			require.Equal(t, resp, string(got), "connection %d", i)
		} else {
			require.Equal(t, "hello", string(got), "connection %d", i)
		}
	}
	require.Equal(t, early, p.Stats().EarlyCloses)
	require.Greater(t, early, int64(0))
	require.Less(t, early, int64(20))
}

// A blip ends the open flows at once and every flow that carries a byte
// while it lasts, new ones included; afterwards new flows work.
func TestBlip(t *testing.T) {
	up := startEcho(t)
	for _, a := range []Action{ActionReset, ActionClose} {
		t.Run(a.String(), func(t *testing.T) {
			p := startProxy(t, Config{}, up.addr())
			open := dial(t, p.Addr())
			roundTrip(t, open, "before")
			p.Blip(300*time.Millisecond, a)
			_, err := readErr(open, 2*time.Second)
			require.Error(t, err)
			require.Equal(t, a == ActionReset, isReset(err), "%v", err)

			during := dial(t, p.Addr()) // accepted, then ended at its first byte
			_, _ = during.Write([]byte("x"))
			_, err = readErr(during, 2*time.Second)
			require.Error(t, err, "a flow that sends during the blip ends")

			time.Sleep(350 * time.Millisecond)
			roundTrip(t, dial(t, p.Addr()), "after")
			st := p.Stats()
			require.Equal(t, int64(1), st.Blips)
			require.Equal(t, int64(2), st.BlipKills)
		})
	}
}
