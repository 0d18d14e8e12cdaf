package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// transcript is what run prints with the key prefix p, and the last line
// of counters.
func transcript(p, pause, counters string) string {
	return strings.ReplaceAll(`PING: PONG
SET P:greeting hello: OK
GET P:greeting: hello
INCR P:visits: 1
pause `+pause+`
GET P:greeting: hello
INCR P:visits: 2
DEL P:greeting P:visits: 2
`, "P:", p) + counters + "\n"
}

// Against its own server, which resets connections idle for 400 ms: the
// declared timeout makes the pool retire the idle connection first.
func TestRunDeclared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	o := options{serverIdle: 400 * time.Millisecond, declare: true, pause: 600 * time.Millisecond, prefix: "k:"}
	require.NoError(t, run(ctx, &out, o))
	require.Equal(t, transcript("k:", "600ms", "dials 2, idle connections retired 1, dead ones caught 0, retries 0"), out.String())
}

// Undeclared, the server's RST arrives while the connection sits idle, and
// the peek at checkout catches it before the GET is written.
func TestRunUndeclared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	o := options{serverIdle: 200 * time.Millisecond, declare: false, pause: 500 * time.Millisecond, prefix: "k:"}
	require.NoError(t, run(ctx, &out, o))
	require.Equal(t, transcript("k:", "500ms", "dials 2, idle connections retired 0, dead ones caught 1, retries 0"), out.String())
}

// The server's error replies are replies, and the connection stays in the
// pool.
func TestCallErrorReply(t *testing.T) {
	srv, err := listen(0)
	require.NoError(t, err)
	defer srv.Close()
	pool, err := newPool(options{addr: srv.Addr().String()})
	require.NoError(t, err)
	defer pool.Close(context.Background())
	var out bytes.Buffer
	require.NoError(t, do(context.Background(), &out, pool, []command{{"NOSUCH", true}, {"GET missing", true}}))
	require.Equal(t, "NOSUCH: ERR unknown command or wrong number of arguments\nGET missing: (nil)\n", out.String())
	require.EqualValues(t, 1, pool.Stats().Dials)
}

// The same protocol against the real Redis: the example speaks RESP.
func TestRunRedis(t *testing.T) {
	const addr = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis unreachable at %s: %v", addr, err)
		}
		t.Skipf("redis unreachable at %s (%v): start it, or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", addr, err)
	} else {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	prefix := fmt.Sprintf("rstpool-example-test-%d:", time.Now().UnixNano())
	require.NoError(t, run(ctx, &out, options{addr: addr, pause: 50 * time.Millisecond, prefix: prefix}))
	require.Equal(t, transcript(prefix, "50ms", "dials 1, idle connections retired 0, dead ones caught 0, retries 0"), out.String())
}
