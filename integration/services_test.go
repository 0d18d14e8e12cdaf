package integration

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// serviceWait bounds how long a test waits for a server to stop or to
// answer again.
const serviceWait = 30 * time.Second

// A service is a local server a test may restart: down stops it (or
// restarts it in one step, returning when it is up), up starts it, and
// ready runs a query.
type service struct {
	name  string
	addr  string
	down  func() error
	up    func() error
	ready func(ctx context.Context) error
}

// restart stops and starts s, waits until a query works, and returns how
// long the port refused connections and how long until a query worked.
// The cleanup restores s even when the test fails on the way. The watch
// of the port must not load the server it measures: where the kernel's
// table of listening sockets can be read it opens no connection, and the
// test fails if it did.
func (s service) restart(t *testing.T) (refusing, total time.Duration) {
	t.Helper()
	t.Cleanup(func() { s.restore(t) })
	start := time.Now()
	probe := watchRefusals(s.addr)
	require.NoError(t, s.down(), "stop %s", s.name)
	require.NoError(t, s.up(), "start %s", s.name)
	s.waitReady(t)
	total = time.Since(start)
	w := probe()
	t.Logf("%s restart: %s", s.name, w)
	if w.fromTable {
		require.Zero(t, w.dials, "the watch of the port connected to %s", s.name)
	}
	return w.refused, total
}

// restore starts s when its port does not answer, and waits for a query.
func (s service) restore(t *testing.T) {
	if !portListens(s.addr) {
		if err := s.up(); err != nil {
			t.Errorf("restore %s: %v", s.name, err)
		}
	}
	s.waitReady(t)
}

func (s service) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(serviceWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s not ready after %v: %v", s.name, s.addr, serviceWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A portWatch is what watchRefusals saw of a port.
type portWatch struct {
	refused   time.Duration // how long nothing listened (connects were refused)
	fromTable bool          // read from the kernel's table of listening sockets
	dials     int           // connections the watch opened (without the table)
	maxQueue  int           // the longest accept queue seen (from the table)
}

func (w portWatch) String() string {
	if w.fromTable {
		return fmt.Sprintf("port refused %v (kernel table, no connection), longest accept queue %d", w.refused, w.maxQueue)
	}
	return fmt.Sprintf("port refused %v (%d probe connections)", w.refused, w.dials)
}

// watchRefusals watches addr until the returned function is called,
// which reports how long nothing listened on it. It reads the kernel's
// table of listening sockets every 10 ms and opens no connection: a
// connection the server accepts costs it a session (PostgreSQL forks a
// backend for each, at about ten a second on a busy machine), and a probe
// every 10 ms filled its accept queue through a restart. Where the table
// cannot be read it connects at most every 100 ms.
func watchRefusals(addr string) func() portWatch {
	stop, done := make(chan struct{}), make(chan portWatch, 1)
	go func() {
		var w portWatch
		_, w.fromTable, _ = listening(addr)
		every := 10 * time.Millisecond
		if !w.fromTable {
			every = 100 * time.Millisecond
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for stopped := false; ; {
			select {
			case <-stop:
				// One last look: on a busy machine a look at a table of
				// thousands of sockets can outlast the watch.
				stopped = true
			case <-tick.C:
			}
			on, queue := true, 0
			if w.fromTable {
				on, _, queue = listening(addr)
			} else {
				w.dials++
				on = portAnswers(addr)
			}
			now := time.Now()
			w.maxQueue = max(w.maxQueue, queue)
			if !on {
				w.refused += now.Sub(last) // a late tick still counts the time since the last look
			}
			last = now
			if stopped {
				done <- w
				return
			}
		}
	}()
	return func() portWatch { close(stop); return <-done }
}

// listening reports, from the kernel's tables of TCP sockets (Linux
// /proc/net/tcp and tcp6), whether a socket listens on addr's port at
// addr's host or at any address, and its accept queue. ok is false where
// the tables cannot be read.
func listening(addr string) (on, ok bool, queue int) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false, false, 0
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			return false, false, 0
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			local, err := parseProcAddr(f[1])
			if err != nil || local.Port() != ap.Port() || !(local.Addr() == ap.Addr() || local.Addr().IsUnspecified()) {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":") // a listener's rx_queue: its accept queue
			q, _ := strconv.ParseInt(rx, 16, 32)
			return true, true, int(q)
		}
	}
	return false, true, 0
}

// parseProcAddr decodes an address of /proc/net/tcp: "0100007F:1538" is
// 127.0.0.1:5432 (the address in the kernel's 32-bit words, each in host
// order: little-endian here; the port in big-endian hex).
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q", s)
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// portListens reports whether something listens on addr, from the
// kernel's table where it can be read, else by connecting.
func portListens(addr string) bool {
	if on, ok, _ := listening(addr); ok {
		return on
	}
	return portAnswers(addr)
}

// portAnswers reports whether a connect to addr succeeds within 200 ms.
func portAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// pgService is the local PostgreSQL 15 cluster (pg_ctlcluster).
func pgService() service {
	ctl := func(action string) func() error {
		return func() error {
			out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", action).CombinedOutput()
			if err != nil && !(action == "start" && strings.Contains(string(out), "already running")) {
				return &cmdError{err: err, out: string(out)}
			}
			return nil
		}
	}
	return service{name: "PostgreSQL", addr: pgAddr(), down: ctl("stop"), up: ctl("start"),
		ready: func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, pgURL(pgAddr(), "postgres", "rstpool_ready"))
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			return c.Ping(ctx)
		}}
}

// myService is the local MariaDB: SIGTERM to mariadbd and wait for the
// port to close; start-stop-daemon starts it again.
func myService() service {
	return service{name: "MariaDB", addr: myAddr(), down: stopMariaDB,
		up: func() error {
			out, err := exec.Command("start-stop-daemon", "--start", "--oknodo", "--background",
				"--exec", "/usr/sbin/mariadbd").CombinedOutput()
			if err != nil {
				return &cmdError{err: err, out: string(out)}
			}
			return nil
		},
		ready: func(ctx context.Context) error {
			db, err := sql.Open("mysql", "root@tcp("+myAddr()+")/test")
			if err != nil {
				return err
			}
			defer db.Close()
			return db.PingContext(ctx)
		}}
}

func stopMariaDB() error {
	out, err := exec.Command("pidof", "mariadbd").Output()
	if err != nil {
		return &cmdError{err: err, out: "pidof mariadbd: " + string(out)}
	}
	pid, err := strconv.Atoi(strings.Fields(string(out))[0])
	if err != nil {
		return err
	}
	p, _ := os.FindProcess(pid)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(serviceWait); portListens(myAddr()); {
		if time.Now().After(deadline) {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(serviceWait); p.Signal(syscall.Signal(0)) == nil; {
		if time.Now().After(deadline) {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

type cmdError struct {
	err error
	out string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.out) }
func (e *cmdError) Unwrap() error { return e.err }

// The restart tests' watch of a port sees a listener come and go without
// connecting to it: the server it measures accepts nothing from it.
func TestWatchSeesListenerWithoutConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	on, ok, _ := listening(addr)
	if !ok {
		t.Skip("the kernel's table of listening sockets cannot be read here (/proc/net/tcp): the watch connects instead")
	}
	require.True(t, on, "a listener on %s", addr)
	w := watchRefusals(addr)
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, ln.Close())
	closed := time.Now()
	time.Sleep(200 * time.Millisecond)
	got := w()
	since := time.Since(closed)
	on, _, _ = listening(addr)
	require.False(t, on, "no listener once closed")
	require.True(t, got.fromTable)
	require.Zero(t, got.dials)
	require.GreaterOrEqual(t, got.refused, 50*time.Millisecond, "%s", got)
	require.LessOrEqual(t, got.refused, since+50*time.Millisecond, "%s", got)
	require.Zero(t, accepted.Load(), "the watch connected")
}
