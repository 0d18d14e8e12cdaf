// Command sqlmysql queries MariaDB or MySQL through database/sql with
// go-sql-driver/mysql dialing through an rstpool.Dialer
// (mysql.RegisterDialContext) and rstpool.WrapConnector checking every
// checkout.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3306", "MySQL or MariaDB address")
	user := flag.String("user", "root", "user")
	db := flag.String("db", "test", "database")
	flag.Parse()
	if err := run(context.Background(), *addr, *user, *db); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, user, dbname string) error {
	// The server ends sessions idle longer than wait_timeout (8 h by
	// default); a proxy in between may be stricter. Declare both.
	d := &rstpool.Dialer{Chain: rstpool.Chain{
		{Name: "mysql wait_timeout", IdleTimeout: 8 * time.Hour},
		{Name: "proxy", IdleTimeout: 5 * time.Minute},
	}}
	mysql.RegisterDialContext("rstpool", func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	})
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = user, "rstpool", addr, dbname
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(rstpool.WrapConnector(conn, d))
	defer db.Close()
	db.SetConnMaxIdleTime(d.Chain.ClientIdleTimeout()) // also sweep in the background
	var version string
	if err := db.QueryRowContext(ctx, "select version()").Scan(&version); err != nil {
		return fmt.Errorf("query: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Println(version)
	return nil
}
