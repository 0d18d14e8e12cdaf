package rstpool_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/rstpool/rstpool"
)

// upperServer is a tiny line protocol on loopback: each line comes back in
// upper case; "PING" answers "PONG".
func upperServer() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					reply := strings.ToUpper(line)
					if line == "PING\n" {
						reply = "PONG\n"
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln, nil
}

// lineConn is a pooled connection of the line protocol with the reader
// that buffers its answers: PoolConfig.Wrap makes one per connection, and
// it lives as long as the connection.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

// call sends one line and reads the answer line.
func (c *lineConn) call(line string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	answer, err := c.r.ReadString('\n')
	return strings.TrimSpace(answer), err
}

func ExampleNewPool() {
	ln, err := upperServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()

	pool, err := rstpool.NewPool(rstpool.PoolConfig{
		Addr:    ln.Addr().String(),
		MaxSize: 4,
		Wrap:    func(c net.Conn) net.Conn { return &lineConn{Conn: c, r: bufio.NewReader(c)} },
		// The protocol's cheapest round trip, for connections idle beyond
		// PingAfter and those a peek cannot judge.
		Ping: func(ctx context.Context, c net.Conn) error {
			if got, err := c.(*lineConn).call("PING"); err != nil || got != "PONG" {
				return fmt.Errorf("ping: %q, %w", got, err)
			}
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(context.Background())

	// Reading is idempotent: Do may run it once more on a fresh connection
	// if the connection fails under it.
	var answer string
	err = pool.Do(context.Background(), true, func(c net.Conn) error {
		var err error
		answer, err = c.(*lineConn).call("hello")
		return err
	})
	fmt.Println(answer, err)
	fmt.Println("connections:", pool.Stats().TotalConns)
	// Output:
	// HELLO <nil>
	// connections: 1
}
