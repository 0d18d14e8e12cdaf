package rstpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sqltOpen(t *testing.T, d *Dialer, srv *sqltServer, shape string, wrap bool) *sql.DB {
	t.Helper()
	var c driver.Connector = &sqltConnector{d: d, addr: srv.addr(), shape: shape}
	if wrap {
		c = WrapConnector(c, d)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// sqltConnect opens one wrapped connection outside database/sql.
func sqltConnect(t *testing.T, d *Dialer, srv *sqltServer, shape string) *sqlConn {
	t.Helper()
	dc, err := WrapConnector(&sqltConnector{d: d, addr: srv.addr(), shape: shape}, d).Connect(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { dc.Close() })
	return dc.(*sqlConn)
}

func sqltQuery(db *sql.DB, arg int) error {
	var v string
	if err := db.QueryRow("select %v", arg).Scan(&v); err != nil {
		return err
	}
	if v != "select "+strconv.Itoa(arg) {
		return errors.New("wrong answer " + v)
	}
	return nil
}

// sqltConcurrent runs n queries at once and counts the errors.
func sqltConcurrent(db *sql.DB, n int) int {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- sqltQuery(db, i) })
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	return failed
}

// Idle connections the server closed (FIN), reset (RST) or whose host
// forgot them silently: the checkout's peek sees the first two; a
// statement on a silently forgotten one, which no peek can see, never
// reached the server (the peer's kernel answered it with a reset and
// acknowledged none of it), so it is driver.ErrBadConn and database/sql
// runs it again on another connection, as it does a statement that never
// left.
func TestWrapConnectorSurvivesKilledIdleConns(t *testing.T) {
	for _, how := range []string{"fin", "rst", "forgotten"} {
		t.Run(how, func(t *testing.T) {
			failed := map[bool]int{}
			for _, wrap := range []bool{false, true} {
				srv := sqltListen(t)
				db := sqltOpen(t, noRetry(), srv, "full", wrap)
				db.SetMaxIdleConns(8)
				require.Zero(t, sqltConcurrent(db, 8), "warm-up")
				if how == "forgotten" {
					srv.forget(t)
				} else {
					srv.kill(how == "rst")
				}
				time.Sleep(30 * time.Millisecond) // the FIN or RST arrives; beyond ValidateAfter
				failed[wrap] = sqltConcurrent(db, 8)
			}
			t.Logf("%s: stock %d/8 failed, wrapped %d/8", how, failed[false], failed[true])
			require.Positive(t, failed[false], "the stock pool reuses the dead connections")
			require.Zero(t, failed[true])
		})
	}
}

func TestWrapConnectorCheckoutRetiresDeadConn(t *testing.T) {
	srv := sqltListen(t)
	c := sqltConnect(t, noRetry(), srv, "full")
	require.NotNil(t, c.tracked, "the connector found the conn its driver dialed")
	_, err := c.QueryContext(context.Background(), "x", nil)
	require.NoError(t, err)
	require.NoError(t, c.ResetSession(context.Background()), "a live conn passes")
	srv.kill(false)
	time.Sleep(20 * time.Millisecond)
	err = c.ResetSession(context.Background())
	require.ErrorIs(t, err, driver.ErrBadConn)
	require.ErrorIs(t, err, ErrPeerClosed)
	require.Equal(t, int64(1), c.tracked.Stats().Checkouts, "one statement: one piece of work")
}

func TestWrapConnectorEnforcesIdleLimitAndLifetime(t *testing.T) {
	srv := sqltListen(t)
	c := sqltConnect(t, &Dialer{RefusedRetry: -1, IdleTimeout: 40 * time.Millisecond}, srv, "full")
	require.NoError(t, c.ResetSession(context.Background()))
	time.Sleep(60 * time.Millisecond)
	err := c.ResetSession(context.Background())
	require.ErrorIs(t, err, driver.ErrBadConn)
	require.ErrorIs(t, err, ErrIdleLimit)

	c = sqltConnect(t, &Dialer{RefusedRetry: -1, MaxLifetime: 40 * time.Millisecond}, srv, "full")
	time.Sleep(60 * time.Millisecond)
	err = c.ResetSession(context.Background())
	require.ErrorIs(t, err, driver.ErrBadConn)
	require.ErrorIs(t, err, ErrMaxLifetime)
}

func TestWrapConnectorPingsWhenDataPending(t *testing.T) {
	srv := sqltListen(t)
	srv.notice.Store(true)
	full := sqltConnect(t, noRetry(), srv, "full")
	basic := sqltConnect(t, noRetry(), srv, "basic")
	for _, c := range []*sqlConn{full, basic} {
		st, err := c.PrepareContext(context.Background(), "x")
		require.NoError(t, err)
		//lint:ignore SA1019 the in-test driver's statements are legacy ones
		_, err = st.Exec(nil)
		require.NoError(t, err)
	}
	time.Sleep(20 * time.Millisecond) // the notice arrives
	h, _ := full.tracked.Check()
	require.Equal(t, HealthPending, h)

	require.NoError(t, full.ResetSession(context.Background()), "the ping reads the notice")
	require.Equal(t, int64(1), srv.pings.Load())
	err := basic.ResetSession(context.Background())
	require.ErrorIs(t, err, driver.ErrBadConn, "no Pinger: pending data retires the conn")
	require.ErrorIs(t, err, ErrUnsolicitedData)
}

func TestWrapConnectorMapsUnsentFailureToBadConn(t *testing.T) {
	srv := sqltListen(t)
	fresh := sqltConnect(t, noRetry(), srv, "full")
	reused := sqltConnect(t, noRetry(), srv, "full")
	for _, c := range []*sqlConn{fresh, reused} {
		_, err := c.QueryContext(context.Background(), "x", nil)
		require.NoError(t, err)
	}
	srv.kill(true)
	time.Sleep(20 * time.Millisecond)

	for _, c := range []*sqlConn{fresh, reused} {
		_, err := c.ExecContext(context.Background(), "x", nil)
		require.ErrorIs(t, err, driver.ErrBadConn, "nothing of the statement left: database/sql may send it again")
		var ce *ConnError
		require.ErrorAs(t, err, &ce, "the original is kept")
		require.Equal(t, "validate", ce.Op, "caught by the check before the write")
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Equal(t, ClassReset, Classify(err))
	}
}

// A statement is sent again only when its connection failed before a byte
// of it left: the count of bytes written did not move while it ran.
func TestBadIfSafeOnlyForUnsentStatements(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	c := &sqlConn{tracked: newConn(p1, DefaultPeekAfter, false)}
	c.tracked.nwritten.Store(100)
	unsent, sent := int64(100), int64(90)
	reset := &ConnError{Op: "read", Class: ClassReset, Err: syscall.ECONNRESET}
	cases := []struct {
		err  error
		w0   int64
		want bool
	}{
		{reset, unsent, true},
		{reset, sent, false},
		{&ConnError{Op: "dial", Class: ClassRefused, Err: syscall.ECONNREFUSED}, unsent, true},
		{errors.New("syntax error"), unsent, false},
		{context.DeadlineExceeded, unsent, false},
	}
	for _, tc := range cases {
		got := c.badIfSafe(tc.err, mark{w: tc.w0})
		require.Equal(t, tc.want, errors.Is(got, driver.ErrBadConn), "%v", tc.err)
		require.ErrorIs(t, got, tc.err, "the original is kept")
	}
	require.NoError(t, c.badIfSafe(nil, mark{w: unsent}))
}

func TestWrapConnectorFallsBackLikeDatabaseSQL(t *testing.T) {
	srv := sqltListen(t)
	for _, shape := range []string{"basic", "legacy", "full"} {
		db := sqltOpen(t, noRetry(), srv, shape, true)
		var v string
		require.NoError(t, db.QueryRow("q%v", 7).Scan(&v), shape)
		want := map[string]string{"basic": "q7", "legacy": "legacy q7", "full": "q7"}[shape]
		require.Equal(t, want, v, shape)
		res, err := db.Exec("e%v", 1)
		require.NoError(t, err, shape)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.NoError(t, db.Ping(), shape)
		tx, err := db.Begin()
		require.NoError(t, err, shape)
		require.NoError(t, tx.Commit())
		_, err = db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable})
		require.Error(t, err, "%s: no ConnBeginTx, no isolation levels", shape)
		if shape != "full" {
			_, err = db.Query("q%v", sql.Named("n", 1))
			require.Error(t, err, "%s: named arguments are refused", shape)
		}
	}
	require.Equal(t, 3, srv.accepted())
}

func TestWrapConnectorReportsConfigError(t *testing.T) {
	srv := sqltListen(t)
	d := &Dialer{KeepAliveCount: 1000}
	db := sqltOpen(t, d, srv, "full", true)
	var ce *ConfigError
	require.ErrorAs(t, db.Ping(), &ce)
	require.Zero(t, srv.accepted())
}

// A driver that reports its own error instead of the connection's
// (go-sql-driver/mysql's "invalid connection") gets the connection's
// failure attached: the class, the errno and the cause survive.
func TestWrapConnectorExplainsReplacedErrors(t *testing.T) {
	tc := dialTracked(t, noRetry(), listen(t, resetServer).Addr().String())
	_, err := tc.Write([]byte("Q 1\n"))
	require.NoError(t, err)
	_, err = tc.Read(make([]byte, 8))
	require.ErrorIs(t, err, syscall.ECONNRESET)

	invalid := errors.New("invalid connection")
	c := &sqlConn{tracked: tc}
	err = c.badIfSafe(invalid, mark{})
	require.ErrorIs(t, err, invalid)
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.Equal(t, ClassReset, Classify(err))
	require.NotErrorIs(t, err, driver.ErrBadConn, "the query was written: it may have run")
	require.Contains(t, err.Error(), "invalid connection (rstpool: reset (")

	healthy := &sqlConn{tracked: dialTracked(t, noRetry(), listen(t, echo).Addr().String())}
	require.Equal(t, invalid, healthy.badIfSafe(invalid, mark{}), "nothing to attach from a healthy connection")
}

// A driver that prepares every statement and replaces connection errors
// with its own (go-sql-driver/mysql): the statement's failure still carries
// the connection's class, errno and cause.
func TestWrapConnectorStatementsCarryTheConnectionFailure(t *testing.T) {
	srv := sqltListen(t)
	for _, wrap := range []bool{false, true} {
		db := sqltOpen(t, noRetry(), srv, "replacing", wrap)
		ctx := context.Background()
		conn, err := db.Conn(ctx) // pinned: the checkout ran, the kill comes after it
		require.NoError(t, err)
		var v string
		require.NoError(t, conn.QueryRowContext(ctx, "select %v", 1).Scan(&v))
		srv.kill(true)
		time.Sleep(20 * time.Millisecond)
		err = conn.QueryRowContext(ctx, "select %v", 2).Scan(&v)
		require.ErrorIs(t, err, errInvalidConn, "the driver's own error stays")
		if !wrap {
			require.Equal(t, ClassOther, Classify(err), "stock: the class is lost")
		} else {
			require.Equal(t, ClassReset, Classify(err), "%v", err)
			require.ErrorIs(t, err, syscall.ECONNRESET)
			require.ErrorIs(t, err, driver.ErrBadConn, "nothing of the statement left")
		}
		_ = conn.Close()
	}
}
