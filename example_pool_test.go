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

// call sends one line and reads the answer line.
func call(c net.Conn, line string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
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
		// The protocol's cheapest round trip, used on connections idle
		// beyond PingAfter, when a peek cannot tell.
		Ping: func(ctx context.Context, c net.Conn) error {
			if got, err := call(c, "PING"); err != nil || got != "PONG" {
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
	// if a reused one turns out to be dead.
	var answer string
	err = pool.Do(context.Background(), true, func(c net.Conn) error {
		var err error
		answer, err = call(c, "hello")
		return err
	})
	fmt.Println(answer, err)
	fmt.Println("connections:", pool.Stat().TotalConns())
	// Output:
	// HELLO <nil>
	// connections: 1
}
