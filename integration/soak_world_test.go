package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// The soak's world: real servers that count what reaches them, each behind
// a fault proxy of its own (internal/faultproxy), toxiproxy and nginx on one
// path, and PostgreSQL behind a fault proxy.

// Server-side timeouts of the world, which the schedule's quiet spells are
// drawn against.
const (
	soakServerKeepAlive = 1500 * time.Millisecond // the HTTP servers' IdleTimeout
	soakNginxKeepAlive  = time.Second             // nginx's keepalive_timeout (startNginx)
	soakNATIdle         = time.Second             // the silent middlebox on the "nat" path
	soakReapIdle        = 700 * time.Millisecond  // the fault proxies' idle timeout in reap-rst episodes
	soakHold            = 30 * time.Millisecond   // how long a server holds a request marked hold
	soakUpload          = 300 << 10               // an upload: above rstpool's Expect threshold (256 KiB)
)

// A counter counts, per request id, how many times a server ran the work.
// Ids index a slice sized once the schedule is known (so that counting
// allocates nothing during the run); others are counted together.
type counter struct {
	ids   atomic.Pointer[[]atomic.Int32]
	other atomic.Int64
}

// size makes room for ids 0 to n-1.
func (c *counter) size(n int) {
	s := make([]atomic.Int32, n)
	c.ids.Store(&s)
}

func (c *counter) add(id string) {
	i, err := strconv.Atoi(id)
	s := c.ids.Load()
	if err != nil || s == nil || i < 0 || i >= len(*s) {
		c.other.Add(1)
		return
	}
	(*s)[i].Add(1)
}

// count returns how many times the work of id ran.
func (c *counter) count(id int64) int {
	s := c.ids.Load()
	if s == nil || id < 0 || id >= int64(len(*s)) {
		return 0
	}
	return int((*s)[id].Load())
}

// countingHandler reads the body, counts the request id (X-Request-Id),
// holds the request soakHold when asked (?hold), and answers "ok".
func countingHandler(c *counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c.add(r.Header.Get("X-Request-Id"))
		if r.URL.Query().Has("hold") {
			time.Sleep(soakHold)
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// startHTTPServer runs an HTTP server with keep-alive idle: HTTP/1 (proto
// "h1"), HTTP/1 and h2c ("h2c") or HTTP/2 over TLS ("h2tls").
func startHTTPServer(t *testing.T, proto string, idle time.Duration, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.IdleTimeout = idle
	srv.Config.ErrorLog = quietLog()
	switch proto {
	case "h2c":
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
	case "h2tls":
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// startFaultProxy puts a fault proxy in front of upstream.
func startFaultProxy(t *testing.T, upstream string, cfg faultproxy.Config) *faultproxy.Proxy {
	cfg.Upstream = upstream
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4096
	}
	p, err := faultproxy.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// serveConns accepts on a fresh loopback listener and runs serve on each
// connection until the test ends.
func serveConns(t *testing.T, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				serve(c)
			})
		}
	})
	return ln.Addr().String()
}

// startLineServer runs the Pool's protocol: each line "ID HOLD\n" is
// counted and answered "ok ID\n" (after soakHold when HOLD is "1").
func startLineServer(t *testing.T, c *counter) string {
	return serveConns(t, func(nc net.Conn) {
		r := bufio.NewReader(nc)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			id, hold, _ := strings.Cut(strings.TrimSpace(line), " ")
			c.add(id)
			if hold == "1" {
				time.Sleep(soakHold)
			}
			if _, err := io.WriteString(nc, "ok "+id+"\n"); err != nil {
				return
			}
		}
	})
}

// startNo100Server is an HTTP/1.1 server that never answers "Expect:
// 100-continue": it reads each request whole (the client sends the body
// after its ExpectContinueTimeout) and answers 200, keeping the connection.
func startNo100Server(t *testing.T, c *counter) string {
	return serveConns(t, func(nc net.Conn) {
		r := bufio.NewReader(nc)
		for {
			req, err := http.ReadRequest(r)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			c.add(req.Header.Get("X-Request-Id"))
			if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
}

// expect417Handler answers 417 Expectation Failed to a request that
// carries an Expect header, as some servers and proxies do (RFC 9110,
// 10.1.1: the client should then repeat it without), and 200 otherwise.
func expect417Handler(c *counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Expect") != "" {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		c.add(r.Header.Get("X-Request-Id"))
		_, _ = io.WriteString(w, "ok")
	})
}

// halfCloseGreeting is what the half-closing server writes before its FIN.
const halfCloseGreeting = "hello, then my FIN\n"

// A halfCloser is a server that greets, half-closes (CloseWrite) and keeps
// reading: it records, per id (the first line the client sends), how many
// bytes arrived after the greeting.
type halfCloser struct {
	mu   sync.Mutex
	got  map[string]int
	addr string
}

func startHalfCloser(t *testing.T) *halfCloser {
	h := &halfCloser{got: map[string]int{}}
	h.addr = serveConns(t, func(nc net.Conn) {
		if _, err := io.WriteString(nc, halfCloseGreeting); err != nil {
			return
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(nc)
		id, _, _ := strings.Cut(string(b), "\n")
		h.mu.Lock()
		h.got[id] += len(b)
		h.mu.Unlock()
	})
	return h
}

func (h *halfCloser) delivered(id string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.got[id]
	return n, ok
}

// refusedAddrs returns n distinct loopback addresses on one closed port:
// churning destinations (pod IPs) that refuse.
func refusedAddrs(t *testing.T, n int) []string {
	_, port, err := net.SplitHostPort(closedAddr(t))
	require.NoError(t, err)
	out := make([]string, n)
	for i := range out {
		out[i] = net.JoinHostPort(fmt.Sprintf("127.3.%d.%d", i/250, i%250+1), port)
	}
	return out
}

// dialChecker is a health checker: it connects to addr every period and
// closes at once, until ctx ends, counting refusals.
func dialChecker(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), addr string, period time.Duration, refused *atomic.Int64) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dial(dctx, "tcp", addr)
		cancel()
		if err != nil {
			refused.Add(1)
			continue
		}
		c.Close()
	}
}
