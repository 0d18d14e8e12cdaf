package integration

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// myAddr is the MariaDB server: RSTPOOL_MYSQL_ADDR, else the local one.
func myAddr() string { return envOr("RSTPOOL_MYSQL_ADDR", "127.0.0.1:3306") }

// myDialers maps the network names registered with the driver to Dialers.
var myDialers sync.Map

// myNetwork registers d with go-sql-driver/mysql under a name of its own.
func myNetwork(name string, d *rstpool.Dialer) string {
	if _, loaded := myDialers.LoadOrStore(name, d); !loaded {
		mysql.RegisterDialContext(name, func(ctx context.Context, addr string) (net.Conn, error) {
			v, _ := myDialers.Load(name)
			return v.(*rstpool.Dialer).DialContext(ctx, "tcp", addr)
		})
	}
	myDialers.Store(name, d)
	return name
}

// myScenario is a scenario's own user and table, removed at the end.
type myScenario struct {
	admin *sql.DB
	user  string
	table string
}

func newMyScenario(t *testing.T, name string) *myScenario {
	t.Helper()
	admin, err := sql.Open("mysql", "root@tcp("+myAddr()+")/test")
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		unreachable(t, "MariaDB at "+myAddr(), err)
	}
	s := &myScenario{admin: admin, user: fmt.Sprintf("rstpool_%s_%d", name, os.Getpid())}
	s.table = s.user
	s.exec(t, "create user if not exists '"+s.user+"'@'127.0.0.1'")
	s.exec(t, "grant select, insert on test.* to '"+s.user+"'@'127.0.0.1'")
	s.exec(t, "create table "+s.table+" (id bigint primary key)")
	t.Cleanup(func() {
		s.killAll(t)
		s.exec(t, "drop table if exists "+s.table)
		s.exec(t, "drop user if exists '"+s.user+"'@'127.0.0.1'")
	})
	return s
}

func (s *myScenario) exec(t *testing.T, q string) {
	t.Helper()
	_, err := s.admin.Exec(q)
	require.NoError(t, err, q)
}

func (s *myScenario) reset(t *testing.T) { s.exec(t, "truncate table "+s.table) }

// ids lists the ids in the scenario's table.
func (s *myScenario) ids(t *testing.T) []int64 {
	rows, err := s.admin.Query("select id from " + s.table)
	require.NoError(t, err)
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// killAll kills every session of the scenario's user.
func (s *myScenario) killAll(t *testing.T) {
	rows, err := s.admin.Query("select id from information_schema.processlist where user = ?", s.user)
	require.NoError(t, err)
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	for _, id := range ids {
		_, _ = s.admin.Exec(fmt.Sprintf("kill %d", id)) // it may be gone already
	}
}

// open returns database/sql over go-sql-driver/mysql: stock (d nil), or
// dialing through d and wrapped with rstpool.WrapConnector. params are
// DSN parameters (session variables such as wait_timeout).
func (s *myScenario) open(t *testing.T, d *rstpool.Dialer, network, params string) target {
	dsn := s.user + "@tcp(" + myAddr() + ")/test?" + params
	if d != nil {
		dsn = s.user + "@" + myNetwork(network, d) + "(" + myAddr() + ")/test?" + params
	}
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(conn)
	if d != nil {
		db = sql.OpenDB(rstpool.WrapConnector(conn, d))
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	t.Cleanup(func() { db.Close() })
	return sqlTarget(db, s.table, "?", func(ctx context.Context) (n int64, err error) {
		return n, s.admin.QueryRowContext(ctx, "select count(*) from "+s.table).Scan(&n)
	})
}

func TestMySQLWaitTimeout(t *testing.T) {
	s := newMyScenario(t, "wait")
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "mariadb wait_timeout", IdleTimeout: time.Second}}}
	sideBySide(t, "MariaDB wait_timeout 1s, go-sql-driver/mysql", false, func(t *testing.T, ours bool) *result {
		s.reset(t)
		tg := s.open(t, dialerIf(ours, d), "rstpool_wait", "wait_timeout=1")
		r := burst(tg, 8)
		r.add(gaps(tg, 8, 3, 1100*time.Millisecond, 1500*time.Millisecond))
		finish(t, tg, r)
		return r
	})
}

func TestMySQLSessionsKilledWhileIdle(t *testing.T) {
	s := newMyScenario(t, "kill")
	sideBySide(t, "MariaDB KILL all idle, go-sql-driver/mysql", false, func(t *testing.T, ours bool) *result {
		s.reset(t)
		tg := s.open(t, dialerIf(ours, &rstpool.Dialer{}), "rstpool_kill", "")
		total := &result{}
		for range 3 {
			total.add(burst(tg, 8))
			s.killAll(t)
			time.Sleep(100 * time.Millisecond)
			total.add(burst(tg, 8))
		}
		finish(t, tg, total)
		return total
	})
}
