// Command rawtcp speaks a protocol of its own over an rstpool.Pool: Redis's
// inline commands ("SET k v\r\n"), whose replies it parses itself. The
// pool hands out only connections that pass its checks, holds one
// bufio.Reader per connection for the connection's whole life
// (PoolConfig.Wrap), pings connections idle for long, and Do retries a
// command once when its connection failed and that is safe.
//
// Without -addr it starts a small server of its own on 127.0.0.1 that
// resets connections idle longer than -server-idle, as a Redis "timeout" or
// a load balancer does; with -addr it talks to a Redis server.
//
//	go run ./rawtcp
//	go run ./rawtcp -addr 127.0.0.1:6379 -server-idle 0
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
)

// options are the command's flags.
type options struct {
	addr       string        // empty: a server of its own
	serverIdle time.Duration // how long the server keeps an idle connection; 0: forever
	declare    bool          // declare serverIdle as a hop
	pause      time.Duration // the quiet spell in the middle
	prefix     string        // prefix of the keys it writes (and deletes at the end)
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "Redis address (empty: start a server of its own on 127.0.0.1)")
	flag.DurationVar(&o.serverIdle, "server-idle", time.Second, "how long the server keeps an idle connection (Redis: its timeout setting; 0: forever)")
	flag.BoolVar(&o.declare, "declare", true, "declare the server's idle timeout as a hop (false: leave it to the check at checkout)")
	flag.DurationVar(&o.pause, "pause", 1500*time.Millisecond, "quiet spell between the two rounds")
	flag.StringVar(&o.prefix, "prefix", "rstpool-example:", "prefix of the keys written, and deleted at the end")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, o options) error {
	if o.addr == "" {
		srv, err := listen(o.serverIdle)
		if err != nil {
			return err
		}
		defer srv.Close()
		o.addr = srv.Addr().String()
	}
	pool, err := newPool(o)
	if err != nil {
		return err
	}
	defer pool.Close(context.Background())

	greeting, visits := o.prefix+"greeting", o.prefix+"visits"
	get, incr := command{"GET " + greeting, true}, command{"INCR " + visits, false}
	if err := do(ctx, w, pool, []command{{"PING", true}, {"SET " + greeting + " hello", true}, get, incr}); err != nil {
		return err
	}
	fmt.Fprintf(w, "pause %v\n", o.pause)
	time.Sleep(o.pause)
	if err := do(ctx, w, pool, []command{get, incr, {"DEL " + greeting + " " + visits, true}}); err != nil {
		return err
	}
	s := pool.Stats()
	fmt.Fprintf(w, "dials %d, idle connections retired %d, dead ones caught %d, retries %d\n",
		s.Dials, s.Retired.IdleLimit, s.Retired.PeerClosed, s.Retried)
	return nil
}

// newPool returns a pool of connections to o.addr. With the server's idle
// timeout declared as a hop, the pool retires connections idle for ¾ of it
// before the server resets them; without, the peek at checkout finds the
// reset connection and the pool dials another, before a byte is sent.
func newPool(o options) (*rstpool.Pool, error) {
	var chain rstpool.Chain
	if o.declare && o.serverIdle > 0 {
		chain = rstpool.Chain{{Name: "server timeout", IdleTimeout: o.serverIdle}}
	}
	return rstpool.NewPool(rstpool.PoolConfig{
		Addr:    o.addr,
		Dialer:  &rstpool.Dialer{Chain: chain},
		MaxSize: 4,
		Wrap:    func(c net.Conn) net.Conn { return &respConn{Conn: c, r: bufio.NewReader(c)} },
		Ping: func(ctx context.Context, c net.Conn) error {
			reply, err := c.(*respConn).call("PING")
			if err == nil && reply != "PONG" {
				err = fmt.Errorf("ping: unexpected reply %q", reply)
			}
			return err
		},
	})
}

// A command is one inline command and whether running it twice is
// harmless: Do retries a non-idempotent one (INCR) only when its
// connection failed before a byte of it left.
type command struct {
	line       string
	idempotent bool
}

// do runs each command on the pool and prints its reply.
func do(ctx context.Context, w io.Writer, pool *rstpool.Pool, cmds []command) error {
	for _, cmd := range cmds {
		var reply string
		err := pool.Do(ctx, cmd.idempotent, func(c net.Conn) error {
			var err error
			reply, err = c.(*respConn).call(cmd.line)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w (class %s)", cmd.line, err, rstpool.Classify(err))
		}
		fmt.Fprintf(w, "%s: %s\n", cmd.line, reply)
	}
	return nil
}

// A respConn is a pooled connection with the reader that buffers its
// replies. PoolConfig.Wrap makes one per connection, and the pool hands it
// to Do and Ping for the connection's whole life.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

// call sends one inline command and reads its reply. An error reply of the
// server ("-ERR …") is returned as the reply, not as an error: the exchange
// completed and the connection is still in step, and an error from Do's fn
// after I/O makes the pool discard the connection.
func (c *respConn) call(line string) (string, error) {
	if _, err := io.WriteString(c.Conn, line+"\r\n"); err != nil {
		return "", err
	}
	head, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	head = strings.TrimSuffix(head, "\r\n")
	switch {
	case head == "":
		return "", errors.New("empty reply")
	case head[0] == '+' || head[0] == '-' || head[0] == ':':
		return head[1:], nil
	case head == "$-1":
		return "(nil)", nil
	case head[0] == '$':
		n, err := strconv.Atoi(head[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", head)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", head)
}

// Close says goodbye before it closes the connection, as Redis clients do.
func (c *respConn) Close() error {
	_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.WriteString(c.Conn, "QUIT\r\n")
	return c.Conn.Close()
}
