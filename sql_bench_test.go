package rstpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"runtime"
	"testing"
)

// BenchmarkWrapConnector compares database/sql over a trivial line
// protocol on loopback (the driver of sql_driver_test.go), stock (plain
// net.Dialer) and through WrapConnector (dialed through a Dialer, checked
// at each checkout): op=conn is DB.Conn and Conn.Close on a warm pool,
// op=query one QueryRow. Compare with benchstat -col /client.
func BenchmarkWrapConnector(b *testing.B) {
	srv := sqltListen(b)
	size := max(4, runtime.GOMAXPROCS(0))
	open := func(client string) *sql.DB {
		var c driver.Connector = &sqltConnector{addr: srv.addr(), shape: "full"}
		if client == "rstpool" {
			d := noRetry()
			c = WrapConnector(&sqltConnector{d: d, addr: srv.addr(), shape: "full"}, d)
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(size)
		db.SetMaxIdleConns(size)
		benchWarmSQL(b, db, size)
		return db
	}
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
		{"query", func(db *sql.DB) error { return sqltQuery(db, 1) }},
	}
	for _, op := range ops {
		for _, mode := range []string{"serial", "parallel"} {
			for _, client := range []string{"stock", "rstpool"} {
				b.Run("op="+op.name+"/mode="+mode+"/client="+client, func(b *testing.B) {
					db := open(client)
					defer db.Close()
					benchLoop(b, mode, func() {
						if err := op.do(db); err != nil {
							b.Fatal(err)
						}
					})
				})
			}
		}
	}
}
