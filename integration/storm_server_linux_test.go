package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A stormServer is an HTTP server on a fixed loopback port that can
// restart: its listener and every connection closed, then a new listener
// on the same port after a pause. It records when it accepted each
// connection.
type stormServer struct {
	addr    string
	backlog int // listen(2) backlog; zero: Go's (somaxconn)

	mu       sync.Mutex
	srv      *http.Server
	accepted []time.Time
}

func newStormServer(backlog int) (*stormServer, error) {
	s := &stormServer{addr: "127.0.0.1:0", backlog: backlog}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen opens the listener and serves it; the first call picks the port.
func (s *stormServer) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	if s.backlog > 0 {
		if err := relisten(ln, s.backlog); err != nil {
			ln.Close()
			return err
		}
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(&timedListener{Listener: ln, s: s})
	return nil
}

// serve answers after a pause (200 ms while warming up, else 20 ms), so
// that concurrent requests of one client need connections of their own.
func (s *stormServer) serve(w http.ResponseWriter, r *http.Request) {
	switch q := r.URL.Query(); {
	case q.Has("warm"):
		time.Sleep(200 * time.Millisecond)
	case q.Has("hold"):
		time.Sleep(20 * time.Millisecond)
	}
	w.Write([]byte("ok"))
}

// relisten calls listen(2) again on ln's socket: Linux then takes the new
// backlog.
func relisten(ln net.Listener, backlog int) error {
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	return lerr
}

// restart closes the listener and every connection, waits down, and
// listens again on the same port; it returns when the new listener is up.
func (s *stormServer) restart(down time.Duration) (reopened time.Time, err error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if err := srv.Close(); err != nil {
		return time.Time{}, err
	}
	time.Sleep(down)
	for range 50 { // the port may still be held for a moment
		if err = s.listen(); err == nil {
			return time.Now(), nil
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("listen again on %s: %w", s.addr, err)
}

// close closes the server. s.mu is not held meanwhile: Close waits for
// Serve to return, and Serve's Accept takes s.mu to note a connection.
func (s *stormServer) close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Close()
}

// acceptedSince returns the times of the connections accepted at or after
// t, in order.
func (s *stormServer) acceptedSince(t time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, a := range s.accepted {
		if !a.Before(t) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

type timedListener struct {
	net.Listener
	s *stormServer
}

func (l *timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		now := time.Now()
		l.s.mu.Lock()
		l.s.accepted = append(l.s.accepted, now)
		l.s.mu.Unlock()
	}
	return c, err
}

// listenOverflows reads TcpExt ListenOverflows and ListenDrops from
// /proc/net/netstat: connections the kernel dropped because a listener's
// accept queue was full (counted for the whole network namespace).
func listenOverflows() (overflows, drops int64, err error) {
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		names := strings.Fields(sc.Text())
		if !sc.Scan() {
			break
		}
		values := strings.Fields(sc.Text())
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for i, n := range names {
			v, _ := strconv.ParseInt(values[i], 10, 64)
			switch n {
			case "ListenOverflows":
				overflows = v
			case "ListenDrops":
				drops = v
			}
		}
		return overflows, drops, nil
	}
	return 0, 0, errors.New("/proc/net/netstat: no TcpExt ListenOverflows")
}
