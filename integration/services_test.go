package integration

import (
	"context"
	"database/sql"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
// The cleanup restores s even when the test fails on the way.
func (s service) restart(t *testing.T) (refusing, total time.Duration) {
	t.Helper()
	t.Cleanup(func() { s.restore(t) })
	start := time.Now()
	probe := watchRefusals(s.addr)
	require.NoError(t, s.down(), "stop %s", s.name)
	require.NoError(t, s.up(), "start %s", s.name)
	s.waitReady(t)
	total = time.Since(start)
	refusing = probe()
	return refusing, total
}

// restore starts s when its port does not answer, and waits for a query.
func (s service) restore(t *testing.T) {
	if !portAnswers(s.addr) {
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

// watchRefusals dials addr every 10 ms until the returned function is
// called, which reports how long the dials were refused in total.
func watchRefusals(addr string) func() time.Duration {
	stop, done := make(chan struct{}), make(chan time.Duration, 1)
	go func() {
		var refused time.Duration
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- refused
				return
			case <-tick.C:
				if !portAnswers(addr) {
					refused += 10 * time.Millisecond
				}
			}
		}
	}()
	return func() time.Duration { close(stop); return <-done }
}

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
	for deadline := time.Now().Add(serviceWait); portAnswers(myAddr()); {
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
