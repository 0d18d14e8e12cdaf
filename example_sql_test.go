package rstpool_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/rstpool/rstpool"
)

// A driver's connector that dials through the Dialer. With pgx's stdlib:
//
//	cc.DialFunc = d.DialContext
//	c := stdlib.GetConnector(*cc)
//
// With go-sql-driver/mysql:
//
//	mysql.RegisterDialContext("rstpool", func(ctx context.Context, addr string) (net.Conn, error) {
//		return d.DialContext(ctx, "tcp", addr)
//	})
//	cfg.Net = "rstpool"
//	c, _ := mysql.NewConnector(cfg)
type exampleConnector struct{ d *rstpool.Dialer }

func (c exampleConnector) Connect(ctx context.Context) (driver.Conn, error) {
	return nil, errors.New("a real driver dials with c.d.DialContext(ctx, ...) here")
}

func (c exampleConnector) Driver() driver.Driver { return nil }

func ExampleWrapConnector() {
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "pgbouncer client_idle_timeout", IdleTimeout: 10 * time.Minute}}}
	db := sql.OpenDB(rstpool.WrapConnector(exampleConnector{d}, d))
	defer db.Close()
	// Optional: also close idle connections in the background; the
	// checkout check keeps stale ones from callers either way.
	db.SetConnMaxIdleTime(d.Chain.ClientIdleTimeout())
	fmt.Println(db.Stats().OpenConnections)
	// Output: 0
}
