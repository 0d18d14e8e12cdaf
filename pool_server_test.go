package rstpool

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// How the line server treats a connection idle beyond its reap timeout.
const (
	reapFIN    = iota // close in order
	reapRST           // SetLinger(0), then close: a real reset
	reapSilent        // stop answering and reading: a black hole
)

// lineServer is a line protocol server on loopback: "PING" answers
// "PONG", "INCR k" counts a request that must not run twice and answers the
// new count, "ECHO x" answers x. It can reap idle connections, reset the
// next requests it reads, and restart on the same port.
type lineServer struct {
	t    testing.TB
	addr string

	reapAfter atomic.Int64 // idle time before reaping; 0: never
	reapMode  atomic.Int32
	killNext  atomic.Int32 // requests to answer with an RST after counting them
	finNext   atomic.Int32 // requests after whose answer the server closes in order
	tls       *tls.Config  // serve TLS when set (before listen)

	mu        sync.Mutex
	ln        net.Listener
	listening bool // ln is open
	conns     map[net.Conn]struct{}
	counts    map[string]int
	pings     int
	accepts   int
	wg        sync.WaitGroup
}

func lsStart(t testing.TB) *lineServer {
	t.Helper()
	s := &lineServer{t: t, conns: map[net.Conn]struct{}{}, counts: map[string]int{}}
	s.listen("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *lineServer) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	require.NoError(s.t, err)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.mu.Lock()
	s.ln, s.addr, s.listening = ln, ln.Addr().String(), true
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
}

func (s *lineServer) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ln != ln || !s.listening {
			s.mu.Unlock()
			_ = c.Close() // accepted after down: the process is gone
			continue
		}
		s.conns[c] = struct{}{}
		s.accepts++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *lineServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer s.drop(c)
	r := bufio.NewReader(c)
	for {
		if d := time.Duration(s.reapAfter.Load()); d > 0 {
			_ = c.SetReadDeadline(time.Now().Add(d))
		}
		line, err := r.ReadString('\n')
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			s.reap(c)
			return
		}
		if err != nil {
			return
		}
		if !s.answer(c, strings.TrimSpace(line)) {
			return
		}
	}
}

// answer runs one request; false means the connection was reset.
func (s *lineServer) answer(c net.Conn, line string) bool {
	cmd, arg, _ := strings.Cut(line, " ")
	s.mu.Lock()
	var reply string
	switch cmd {
	case "PING":
		s.pings++
		reply = "PONG"
	case "INCR":
		s.counts[arg]++
		reply = strconv.Itoa(s.counts[arg])
	default:
		reply = arg
	}
	s.mu.Unlock()
	if cmd != "PING" && s.killNext.Add(-1) >= 0 {
		lsReset(c)
		return false
	}
	s.killNext.CompareAndSwap(-1, 0)
	// Decide the close before the answer leaves: a client that read the
	// answer may set finNext for its next request at once.
	fin := cmd != "PING" && s.finNext.Add(-1) >= 0
	if !fin {
		s.finNext.CompareAndSwap(-1, 0)
	}
	_, err := c.Write([]byte(reply + "\n"))
	if fin {
		return false // serve closes it: a FIN
	}
	return err == nil
}

func (s *lineServer) reap(c net.Conn) {
	switch s.reapMode.Load() {
	case reapRST:
		lsReset(c)
	case reapSilent:
		_ = c.SetReadDeadline(time.Time{})
		buf := make([]byte, 512)
		for { // swallow and never answer, until the client or stop closes it
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
}

func lsReset(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

func (s *lineServer) drop(c net.Conn) {
	_ = c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// down closes the listener and every connection, as a process that dies:
// connects are refused until up.
func (s *lineServer) down() {
	s.mu.Lock()
	_ = s.ln.Close()
	s.listening = false
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
}

// forget makes the server's host forget every connection silently (see
// forgetSilently), as a middlebox that drops idle flows does.
func (s *lineServer) forget(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		forgetSilently(t, c)
	}
}

// up listens again on the same port.
func (s *lineServer) up() { s.listen(s.addr) }

func (s *lineServer) stop() {
	s.down()
	s.wg.Wait()
}

func (s *lineServer) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key]
}

func (s *lineServer) pingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

func (s *lineServer) acceptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// lsCall sends one request line on c and returns the answer line.
func lsCall(c net.Conn, line string) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	var b [64]byte
	n := 0
	for n == 0 || b[n-1] != '\n' {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return "", err
		}
		if n == len(b) {
			break
		}
	}
	return strings.TrimSpace(string(b[:n])), nil
}

// lsPing is the line protocol's Ping for a PoolConfig.
func lsPing(_ context.Context, c net.Conn) error {
	got, err := lsCall(c, "PING")
	if err == nil && got != "PONG" {
		err = fmt.Errorf("ping answered %q", got)
	}
	return err
}
