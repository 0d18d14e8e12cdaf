package demodb

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

// mysqlDB is MySQL or MariaDB through database/sql and go-sql-driver/mysql:
// stock, and dialing through the Dialer (mysql.RegisterDialContext) under
// rstpool.WrapConnector with each call in rstpool.Retry.
var mysqlDB = demo.Database{
	Name: "mysql", Addr: "127.0.0.1:3306", Client: "database/sql + go-sql-driver/mysql",
	Start: "user root without a password, database test: start-stop-daemon --start --background --exec /usr/sbin/mariadbd, or " +
		"docker run -d -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb",
	Recipe: `CLIENTS.md "database/sql"`,
	Open:   openMySQL,
	Retry:  rstpool.Retry,
}

// mysqlNets numbers the dial functions registered with the driver, whose
// registry is global.
var mysqlNets atomic.Int64

type mysqlStore struct {
	db    *sql.DB
	setup string
	limit time.Duration
}

func openMySQL(addr string, d *rstpool.Dialer, size int) (demo.Store, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", addr, "test"
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{} // it would log the resets the demo counts
	s := &mysqlStore{setup: "database/sql, defaults"}
	if d != nil {
		cfg.Net = fmt.Sprintf("rstpool-demo-%d", mysqlNets.Add(1))
		mysql.RegisterDialContext(cfg.Net, func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		})
		s.setup = "database/sql with WrapConnector, mysql.RegisterDialContext(d), calls in rstpool.Retry"
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	if d == nil {
		s.db = sql.OpenDB(conn)
	} else {
		s.db = sql.OpenDB(rstpool.WrapConnector(conn, d))
		idle, _, _ := d.Limits()
		s.db.SetConnMaxIdleTime(idle)
		s.limit = idle
	}
	s.db.SetMaxOpenConns(size)
	s.db.SetMaxIdleConns(size)
	return s, nil
}

func (s *mysqlStore) About() string       { return s.setup }
func (s *mysqlStore) Idle() time.Duration { return s.limit }
func (s *mysqlStore) Close()              { _ = s.db.Close() }

func (s *mysqlStore) Prepare(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+sqlTable+" (tag VARCHAR(64) NOT NULL, id INT NOT NULL, KEY (tag, id))")
	return err
}

func (s *mysqlStore) Read(ctx context.Context, tag string, id int) error {
	var n int
	return s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+sqlTable+" WHERE tag = ? AND id = ?", tag, id).Scan(&n)
}

func (s *mysqlStore) Write(ctx context.Context, tag string, id int) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO "+sqlTable+" (tag, id) VALUES (?, ?)", tag, id)
	return err
}

func (s *mysqlStore) Applied(ctx context.Context, tag string) (map[int]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, count(*) FROM "+sqlTable+" WHERE tag = ? GROUP BY id", tag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return demo.CountRows(rows)
}

func (s *mysqlStore) Forget(ctx context.Context, tag string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM "+sqlTable+" WHERE tag = ?", tag)
	return err
}
