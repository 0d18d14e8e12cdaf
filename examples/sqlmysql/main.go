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
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3306", "MySQL or MariaDB address")
	user := flag.String("user", "root", "user")
	db := flag.String("db", "test", "database")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *addr, *user, *db); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, addr, user, dbname string) error {
	// Declare the hops from the client to the server: an HAProxy in TCP
	// mode (its "timeout client", 5 minutes here, ends the client's
	// connection and the server's) and MySQL's wait_timeout (8 h by
	// default, the "mysql" preset).
	d := &rstpool.Dialer{Chain: rstpool.Chain{
		{Name: "haproxy timeout client", IdleTimeout: 5 * time.Minute},
		rstpool.MustHop("mysql"),
	}}
	idle, _, err := d.Limits()
	if err != nil {
		return err
	}
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
	db.SetConnMaxIdleTime(idle) // also close idle connections in the background
	// A read is idempotent: Retry runs it once more if its connection
	// failed under it (database/sql does not repeat a query in flight).
	var version string
	err = rstpool.Retry(ctx, true, func(ctx context.Context) error {
		return db.QueryRowContext(ctx, "select version()").Scan(&version)
	})
	if err != nil {
		return fmt.Errorf("query: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Fprintf(w, "%s\nidle limit %s\n", version, idle)
	return nil
}
