package rstpool

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// redisAddr is the Redis the RESP test talks to.
const redisAddr = "127.0.0.1:6379"

// respCommand sends a RESP array of bulk strings and returns the first
// line of the reply, with a bulk reply's payload after it.
func respCommand(c net.Conn, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return respRead(bufio.NewReader(c))
}

// respRead reads a simple reply, or an array of bulk strings flattened.
func respRead(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "*"):
		var n int
		fmt.Sscanf(line, "*%d", &n)
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = respRead(r); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, " "), nil
	case strings.HasPrefix(line, "$"):
		payload, err := r.ReadString('\n')
		return strings.TrimRight(payload, "\r\n"), err
	}
	return line, nil
}

func respPing(_ context.Context, c net.Conn) error {
	got, err := respCommand(c, "PING")
	if err == nil && got != "+PONG" {
		err = fmt.Errorf("PING answered %q", got)
	}
	return err
}

// redisOrSkip connects to the local Redis, or skips the test when it is not
// running (fails when RSTPOOL_REQUIRE_SERVICES=1).
func redisOrSkip(t *testing.T) net.Conn {
	t.Helper()
	c, err := noRetry().Dial("tcp", redisAddr)
	if err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis at %s: %v", redisAddr, err)
		}
		t.Skipf("Redis is not reachable at %s (%v); start one (redis-server --port 6379) to run this test, "+
			"and set RSTPOOL_REQUIRE_SERVICES=1 to make its absence a failure", redisAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPoolAgainstRedisReapingIdleClients runs a RESP PING pool against the
// real Redis with `CONFIG SET timeout 1`: Redis closes clients idle for
// over a second, and the pool must never surface that.
func TestPoolAgainstRedisReapingIdleClients(t *testing.T) {
	admin := redisOrSkip(t)
	old, err := respCommand(admin, "CONFIG", "GET", "timeout")
	require.NoError(t, err)
	_, oldValue, _ := strings.Cut(old, " ")
	_, err = respCommand(admin, "CONFIG", "SET", "timeout", "1")
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := noRetry().Dial("tcp", redisAddr)
		require.NoError(t, err)
		defer c.Close()
		_, err = respCommand(c, "CONFIG", "SET", "timeout", oldValue)
		require.NoError(t, err)
	})

	p, err := NewPool(PoolConfig{Addr: redisAddr, Dialer: noRetry(), MaxSize: 2, Ping: respPing, UpkeepInterval: -1})
	require.NoError(t, err)
	defer p.Close(context.Background())
	key := fmt.Sprintf("rstpool:test:%d", time.Now().UnixNano())
	defer p.Do(context.Background(), true, func(c net.Conn) error { _, err := respCommand(c, "DEL", key); return err })
	for i := range 2 {
		require.NoError(t, p.Do(context.Background(), false, func(c net.Conn) error {
			_, err := respCommand(c, "INCR", key)
			return err
		}), "round %d", i)
		time.Sleep(2200 * time.Millisecond) // Redis reaps idle clients every second or so
	}
	var got string
	require.NoError(t, p.Do(context.Background(), true, func(c net.Conn) error {
		var err error
		got, err = respCommand(c, "GET", key)
		return err
	}))
	require.Equal(t, "2", got, "each INCR ran exactly once")
	st := p.Stats()
	require.Equal(t, int64(0), st.StaleHitInUse(), "no reaped connection was hit in use")
	require.Equal(t, int64(2), st.Retired.Dead(), "each reaped connection was caught before use")
	t.Logf("dials %d, caught before use %d (peer closed %d, ping failed %d), hit in use %d",
		st.Dials, st.Retired.Dead(), st.Retired.PeerClosed, st.Retired.PingFailed, st.StaleHitInUse())
}
