package integration

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"runtime"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
)

// The benchmarks compare each driver stock and with rstpool (its Dialer,
// and WrapConnector for database/sql) against the local servers, in one
// run: benchstat -col /client. They skip a server that does not answer.

// BenchmarkRedis is a go-redis PING or GET (of a missing key) through its
// own pool, stock or with an rstpool Dialer as its Dialer.
func BenchmarkRedis(b *testing.B) {
	size := max(4, runtime.GOMAXPROCS(0))
	ops := []struct {
		name string
		do   func(*redis.Client) error
	}{
		{"ping", func(c *redis.Client) error { return c.Ping(context.Background()).Err() }},
		{"get", func(c *redis.Client) error {
			if err := c.Get(context.Background(), "rstpool:bench:missing").Err(); !errors.Is(err, redis.Nil) {
				return err
			}
			return nil
		}},
	}
	for _, op := range ops {
		for _, mode := range []string{"serial", "parallel"} {
			for _, client := range []string{"stock", "rstpool"} {
				b.Run("op="+op.name+"/mode="+mode+"/client="+client, func(b *testing.B) {
					opt := &redis.Options{Addr: redisAddr(), PoolSize: size, MinIdleConns: size}
					if client == "rstpool" {
						opt.Dialer = (&rstpool.Dialer{}).DialContext
					}
					c := redis.NewClient(opt)
					defer c.Close()
					if err := c.Ping(context.Background()).Err(); err != nil {
						unreachable(b, "Redis at "+redisAddr(), err)
					}
					benchLoop(b, mode, func() {
						if err := op.do(c); err != nil {
							b.Fatal(err)
						}
					})
				})
			}
		}
	}
}

// BenchmarkSQL is database/sql over go-sql-driver/mysql (MariaDB) and pgx's
// stdlib (PostgreSQL), stock or dialing through an rstpool Dialer and
// wrapped with WrapConnector: op=conn is DB.Conn and Conn.Close on a warm
// pool, op=select1 a SELECT 1 through the pool.
func BenchmarkSQL(b *testing.B) {
	ops := []struct {
		name string
		do   func(*sql.DB) error
	}{
		{"conn", func(db *sql.DB) error {
			c, err := db.Conn(context.Background())
			if err != nil {
				return err
			}
			return c.Close()
		}},
		{"select1", func(db *sql.DB) error {
			var one int
			return db.QueryRowContext(context.Background(), "select 1").Scan(&one)
		}},
	}
	for _, dbName := range []string{"mariadb", "postgres"} {
		for _, op := range ops {
			for _, client := range []string{"stock", "rstpool"} {
				b.Run("db="+dbName+"/op="+op.name+"/client="+client, func(b *testing.B) {
					db := benchDB(b, dbName, client == "rstpool")
					defer db.Close()
					benchLoop(b, "serial", func() {
						if err := op.do(db); err != nil {
							b.Fatal(err)
						}
					})
				})
			}
		}
	}
}

// benchDB opens a database/sql pool of one warm connection, stock or
// through WrapConnector, skipping when the server does not answer.
func benchDB(b *testing.B, name string, ours bool) *sql.DB {
	var d *rstpool.Dialer
	if ours {
		d = &rstpool.Dialer{}
	}
	var c driver.Connector
	switch name {
	case "mariadb":
		dsn := "root@tcp(" + myAddr() + ")/test"
		if ours {
			dsn = "root@" + myNetwork("rstpool_bench", d) + "(" + myAddr() + ")/test"
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			b.Fatal(err)
		}
		if c, err = mysql.NewConnector(cfg); err != nil {
			b.Fatal(err)
		}
	case "postgres":
		cc, err := pgx.ParseConfig(pgURL(pgAddr(), "postgres", "rstpool_bench"))
		if err != nil {
			b.Fatal(err)
		}
		if ours {
			cc.DialFunc = d.DialContext
		}
		c = stdlib.GetConnector(*cc)
	}
	if ours {
		c = rstpool.WrapConnector(c, d)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		unreachable(b, name, err)
	}
	return db
}

// benchLoop runs op b.N times, serially or from GOMAXPROCS goroutines.
func benchLoop(b *testing.B, mode string, op func()) {
	b.ReportAllocs()
	b.ResetTimer()
	if mode == "serial" {
		for b.Loop() {
			op()
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
}
