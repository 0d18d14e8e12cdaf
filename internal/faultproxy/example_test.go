package faultproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
)

// A load balancer that forgets flows idle for more than 50 ms: the client
// learns it with an RST on its first exchange after the gap.
func Example() {
	up, _ := net.Listen("tcp", "127.0.0.1:0")
	defer up.Close()
	go func() { // an echo server
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := faultproxy.Start(faultproxy.Config{
		Upstream:    up.Addr().String(),
		IdleTimeout: 50 * time.Millisecond,
		IdleAction:  faultproxy.ActionReset,
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	c, _ := net.Dial("tcp", p.Addr())
	defer c.Close()
	buf := make([]byte, 4)
	c.Write([]byte("ping"))
	_, err = io.ReadFull(c, buf)
	fmt.Println(string(buf), err)

	time.Sleep(100 * time.Millisecond) // longer than the idle timeout
	c.Write([]byte("ping"))
	_, err = io.ReadFull(c, buf)
	fmt.Println(errors.Is(err, syscall.ECONNRESET), p.Stats().ReapedReset)
	// Output:
	// ping <nil>
	// true 1
}
