package integration

import (
	"context"
	"database/sql/driver"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

// restartMu serializes the restart tests: one server down at a time.
var restartMu sync.Mutex

// restartAllowed skips unless RSTPOOL_RESTART_TESTS=1: a restart breaks
// every other client of the server, so these tests run only when the
// integration module runs alone (as .ci/run does).
func restartAllowed(t *testing.T) {
	t.Helper()
	if os.Getenv("RSTPOOL_RESTART_TESTS") != "1" {
		t.Skip("restarts the server: set RSTPOOL_RESTART_TESTS=1 and run the integration module alone")
	}
	restartMu.Lock()
	t.Cleanup(restartMu.Unlock)
}

// pgRestart restarts the local cluster; its cleanup starts it again if
// the test fails on the way.
func pgRestart(t *testing.T) {
	t.Helper()
	refusing, total := pgService().restart(t)
	t.Logf("PostgreSQL restart: port refused %v, ready after %v", refusing, total)
}

// restartDialer is the rstpool Dialer of the restart tests: its refused
// budget (10 s) outlasts the restarts measured here (PostgreSQL about
// 2.5 s, MariaDB about 1.5 s, port closed for part of it) with a margin.
func restartDialer() *rstpool.Dialer { return &rstpool.Dialer{RefusedRetry: 10 * time.Second} }

func TestPGRestartUnderTraffic(t *testing.T) {
	restartAllowed(t)
	for _, kind := range []string{"pgxpool", "stdlib"} {
		t.Run(kind, func(t *testing.T) {
			s := newPGScenario(t, "restart_traffic_"+kind)
			// database/sql + pgx stdlib: about one run in three, one read in
			// ~2000 still fails with a connect reset by the postmaster as it
			// exits (see CLIENTS.md); pgxpool holds zero.
			tolerate := map[string]int64{"pgxpool": 0, "stdlib": 1}[kind]
			restartSideBySide(t, "PostgreSQL restart under traffic, "+kind, tolerate, func(t *testing.T, ours bool) *trafficRun {
				s.admin = pgAdmin(t)
				s.reset(t)
				r := &trafficRun{}
				tg := s.open(t, kind, pgAddr(), dialerIf(ours, restartDialer()))
				if ours {
					tg = withRetry(tg, r, rstpgx.Retry) // its errors are pgx's, in both kinds
				}
				underRestart(t, r, tg, pgService())
				s.admin = pgAdmin(t)
				r.audit(t, s.ids(t))
				return r
			})
		})
	}
}

func TestMySQLRestartUnderTraffic(t *testing.T) {
	restartAllowed(t)
	s := newMyScenario(t, "restart_traffic")
	restartSideBySide(t, "MariaDB restart under traffic, go-sql-driver/mysql", 0, func(t *testing.T, ours bool) *trafficRun {
		s.reset(t)
		r := &trafficRun{}
		tg := s.open(t, dialerIf(ours, restartDialer()), "rstpool_restart", "")
		if ours {
			tg = withRetry(tg, r, retrySQL)
		}
		underRestart(t, r, tg, myService())
		r.audit(t, s.ids(t))
		return r
	})
}

func TestPGRestartWhileIdle(t *testing.T) {
	restartAllowed(t)
	s := newPGScenario(t, "restart_idle")
	sideBySide(t, "PostgreSQL restart while the pool idles, pgxpool", false, func(t *testing.T, ours bool) *result {
		s.admin = pgAdmin(t) // the previous run's did not survive its restart
		tg := s.open(t, "pgxpool", pgAddr(), dialerIf(ours, &rstpool.Dialer{}))
		r := burst(tg, 8)
		finish(t, tg, r)
		pgRestart(t)
		time.Sleep(500 * time.Millisecond) // past the "starting up" window
		s.admin = pgAdmin(t)
		s.reset(t)
		r2 := burst(tg, 8)
		finish(t, tg, r2)
		return r2
	})
}

// retrySQL is, for database/sql over go-sql-driver/mysql, what rstpgx.Retry
// is for pgx: it runs idempotent work once more, after a short pause, when
// it failed because of the connection. database/sql itself repeats only
// driver.ErrBadConn, which drivers return when nothing was sent; a query in
// flight when the server goes away fails with the driver's own error
// (mysql.ErrInvalidConn, "invalid connection") and reaches the caller.
// Writes are never repeated here: database/sql already repeated those that
// provably never left.
func retrySQL(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	err := fn(ctx)
	if err == nil || !idempotent || ctx.Err() != nil || !sqlConnFailure(err) {
		return err
	}
	select {
	case <-ctx.Done():
		return err
	case <-time.After(rstpgx.RetryBackoff):
	}
	return fn(ctx)
}

func sqlConnFailure(err error) bool {
	switch rstpool.Classify(err) {
	case rstpool.ClassReset, rstpool.ClassBrokenPipe, rstpool.ClassPeerClosed, rstpool.ClassRefused:
		return true
	}
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn)
}
