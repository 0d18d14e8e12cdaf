package rstpool

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A tiny database for testing WrapConnector: a line protocol over a real
// loopback socket. The client sends "Q text" (query or exec) or "P" (ping);
// the server answers "R text" or "PONG". The server may send "N text"
// notices at any time; the client skips them.

// sqltServer accepts connections and keeps them so a test can kill them.
type sqltServer struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	pings  atomic.Int64
	notice atomic.Bool // answer every query, then send an unsolicited notice
}

func sqltListen(t testing.TB) *sqltServer {
	t.Helper()
	s := &sqltServer{}
	s.ln = listen(t, s.serve)
	t.Cleanup(func() { s.kill(false) })
	return s
}

func (s *sqltServer) addr() string { return s.ln.Addr().String() }

func (s *sqltServer) serve(c net.Conn) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return
		}
		reply := "PONG\n"
		if strings.HasPrefix(line, "Q ") {
			reply = "R " + line[2:]
		} else {
			s.pings.Add(1)
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
		if s.notice.Load() { // unsolicited, after the client read its answer
			time.Sleep(5 * time.Millisecond)
			_, _ = io.WriteString(c, "N notice\n")
		}
	}
}

// accepted returns how many connections the server accepted.
func (s *sqltServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// kill closes every connection the server holds: with an RST if reset,
// else with a FIN.
func (s *sqltServer) kill(reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if reset {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
	s.conns = nil
}

// forget makes the server's host forget every connection silently (see
// forgetSilently): the client's next bytes are answered by a reset,
// acknowledged by none.
func (s *sqltServer) forget(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		forgetSilently(t, c)
	}
	s.conns = nil
}

// sqltConnector dials through a Dialer and returns connections of a shape
// chosen by the test: "basic" (driver.Conn only), "legacy" (plus the
// pre-context Queryer and Execer), "full" (plus the context interfaces
// and Pinger) or "replacing" (basic, with the driver's own error in place
// of every connection failure).
type sqltConnector struct {
	d     *Dialer
	addr  string
	shape string
}

func (c *sqltConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dial := (&net.Dialer{}).DialContext // a nil d: stock, for benchmarks
	if c.d != nil {
		dial = c.d.DialContext
	}
	nc, err := dial(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	b := &sqltBasic{nc: nc, r: bufio.NewReader(nc), replace: c.shape == "replacing"}
	switch c.shape {
	case "legacy":
		return &sqltLegacy{b}, nil
	case "full":
		return &sqltFull{b}, nil
	}
	return b, nil
}

func (c *sqltConnector) Driver() driver.Driver { return sqltDriver{} }

type sqltDriver struct{}

func (sqltDriver) Open(string) (driver.Conn, error) { return nil, errors.New("use the connector") }

type sqltBasic struct {
	nc      net.Conn
	r       *bufio.Reader
	replace bool // report every I/O failure as errInvalidConn, as go-sql-driver/mysql does
}

// errInvalidConn is the driver's own error in place of the connection's.
var errInvalidConn = errors.New("invalid connection")

// roundTrip sends one line and returns the answer, skipping notices.
func (c *sqltBasic) roundTrip(line string) (string, error) {
	if _, err := io.WriteString(c.nc, line+"\n"); err != nil {
		return "", err
	}
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(s, "N ") {
			return strings.TrimSuffix(s, "\n"), nil
		}
	}
}

// query runs text with the arguments spliced in with %v.
func (c *sqltBasic) query(text string, args []driver.Value) (string, error) {
	a := make([]any, len(args))
	for i, v := range args {
		a[i] = v
	}
	ans, err := c.roundTrip("Q " + fmt.Sprintf(text, a...))
	if err != nil && c.replace {
		return "", errInvalidConn
	}
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(ans, "R "), nil
}

func (c *sqltBasic) Prepare(q string) (driver.Stmt, error) { return &sqltStmt{c, q}, nil }
func (c *sqltBasic) Close() error                          { return c.nc.Close() }
func (c *sqltBasic) Begin() (driver.Tx, error)             { return sqltTx{}, nil }

type sqltTx struct{}

func (sqltTx) Commit() error   { return nil }
func (sqltTx) Rollback() error { return nil }

type sqltStmt struct {
	c *sqltBasic
	q string
}

func (s *sqltStmt) Close() error  { return nil }
func (s *sqltStmt) NumInput() int { return -1 }
func (s *sqltStmt) Exec(args []driver.Value) (driver.Result, error) {
	_, err := s.c.query(s.q, args)
	return driver.RowsAffected(1), err
}
func (s *sqltStmt) Query(args []driver.Value) (driver.Rows, error) {
	v, err := s.c.query(s.q, args)
	if err != nil {
		return nil, err
	}
	return &sqltRows{val: v}, nil
}

// sqltRows is one row of one column, "v".
type sqltRows struct {
	val  string
	done bool
}

func (r *sqltRows) Columns() []string { return []string{"v"} }
func (r *sqltRows) Close() error      { return nil }
func (r *sqltRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done, dest[0] = true, r.val
	return nil
}

// sqltLegacy adds the pre-context Queryer and Execer; the text of a
// query says it came through them.
type sqltLegacy struct{ *sqltBasic }

func (c *sqltLegacy) Query(q string, args []driver.Value) (driver.Rows, error) {
	return (&sqltStmt{c.sqltBasic, "legacy " + q}).Query(args)
}
func (c *sqltLegacy) Exec(q string, args []driver.Value) (driver.Result, error) {
	return (&sqltStmt{c.sqltBasic, q}).Exec(args)
}

// sqltFull adds the context interfaces and a ping.
type sqltFull struct{ *sqltBasic }

func values(args []driver.NamedValue) []driver.Value {
	v := make([]driver.Value, len(args))
	for i, a := range args {
		v[i] = a.Value
	}
	return v
}

func (c *sqltFull) QueryContext(_ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return (&sqltStmt{c.sqltBasic, q}).Query(values(args))
}
func (c *sqltFull) ExecContext(_ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return (&sqltStmt{c.sqltBasic, q}).Exec(values(args))
}
func (c *sqltFull) Ping(context.Context) error {
	ans, err := c.roundTrip("P")
	if err == nil && ans != "PONG" {
		err = fmt.Errorf("ping answered %q", ans)
	}
	return err
}
