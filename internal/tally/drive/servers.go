package drive

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// serve accepts on a loopback port and runs handle on each connection
// with the number of the request it serves; t's cleanup closes the
// listener and every connection.
func serve(t testing.TB, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c.(*net.TCPConn)) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// reset ends c with an RST.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// ReapAfter is the idle timeout of the HTTP server's "/reap" path.
const ReapAfter = 30 * time.Millisecond

// serveHTTP answers HTTP/1.1 with keep-alive: "/reset" is answered with an
// RST, "/reset-reused" too when it is not the connection's first request,
// and "/reap" when the connection sat idle ReapAfter since its last answer
// (an idle timeout, found late); any other path gets "ok".
func serveHTTP(t testing.TB) string {
	return serve(t, func(c *net.TCPConn) {
		defer c.Close()
		br := bufio.NewReader(c)
		last := time.Now()
		for n := 1; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			p := req.URL.Path
			if p == "/reset" || p == "/reset-reused" && n > 1 || p == "/reap" && n > 1 && time.Since(last) >= ReapAfter {
				reset(c)
				return
			}
			last = time.Now()
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
}

// ServeLines answers a line protocol: "ok" gets "ok"; "close" gets "ok",
// then an RST 20 ms later, while the connection sits idle in the pool;
// "reset-reused" gets an RST when it is not the connection's first line,
// else "ok".
func ServeLines(t testing.TB) string {
	return serve(t, func(c *net.TCPConn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for n := 1; ; n++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "reset-reused\n" && n > 1 {
				reset(c)
				return
			}
			if _, err := io.WriteString(c, "ok\n"); err != nil {
				return
			}
			if line == "close\n" {
				time.Sleep(20 * time.Millisecond)
				reset(c)
				return
			}
		}
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
