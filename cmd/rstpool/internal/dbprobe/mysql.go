package dbprobe

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
)

// closeWait bounds a session's goodbye to the server, and a read of its
// farewell without a deadline of its own.
const closeWait = time.Second

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(closeWait)
}

// mysqlSession is one connection of go-sql-driver/mysql, held as a
// database/sql Conn: database/sql never replaces the connection under a
// Conn, so an ended session fails its check instead of being redialed.
type mysqlSession struct {
	db  *sql.DB
	c   *sql.Conn
	tc  *rstpool.Conn
	tls bool // the session speaks TLS: its farewell cannot be read from the socket
}

// connectMySQL logs in through d, recording the tracked connection.
func (t *Target) connectMySQL(ctx context.Context, d *rstpool.Dialer) (*mysqlSession, error) {
	cfg := t.my.Clone()
	cfg.Logger = &mysql.NopLogger{} // it would print the ends the probe measures
	s := &mysqlSession{tls: cfg.TLS != nil || (cfg.TLSConfig != "" && cfg.TLSConfig != "false")}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if s.tc != nil {
			return nil, errRedialed
		}
		c, err := dialFunc(d)(ctx, network, addr)
		s.tc, _ = c.(*rstpool.Conn)
		return c, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, t.loginError(err)
	}
	s.db = sql.OpenDB(conn)
	s.db.SetMaxOpenConns(1)
	if s.c, err = s.db.Conn(ctx); err != nil {
		s.db.Close()
		return nil, t.loginError(err)
	}
	return s, nil
}

func (t *Target) openMySQL(ctx context.Context, d *rstpool.Dialer) (diag.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, t.login())
	defer cancel()
	s, err := t.connectMySQL(ctx, d)
	if err != nil {
		return nil, err
	}
	if err := s.Exchange(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("SELECT 1 on %s: %w", t.Addr, err)
	}
	return s, nil
}

func (s *mysqlSession) Tracked() *rstpool.Conn { return s.tc }

func (s *mysqlSession) Exchange(ctx context.Context) error {
	var n int
	return s.c.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

// Farewell reads what the server wrote before closing, from the socket:
// MySQL 8.0.24 and later send error 4031 (ER_CLIENT_INTERACTION_TIMEOUT);
// MariaDB says nothing. Under TLS it cannot be read this way.
func (s *mysqlSession) Farewell(ctx context.Context) string {
	if s.tls || s.tc == nil {
		return ""
	}
	if s.tc.SetReadDeadline(deadlineOf(ctx)) != nil {
		return ""
	}
	return mysqlError(s.tc)
}

func (s *mysqlSession) Close() error {
	s.c.Close()
	return s.db.Close()
}

// mysqlError reads one packet and formats it when it is an ERR packet
// (0xff, the error number, "#" and the SQL state, the message).
func mysqlError(r io.Reader) string {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return ""
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil || n < 3 || p[0] != 0xff {
		return ""
	}
	code, msg := binary.LittleEndian.Uint16(p[1:3]), p[3:]
	state := ""
	if len(msg) >= 6 && msg[0] == '#' {
		state, msg = " ("+string(msg[1:6])+")", msg[6:]
	}
	return "ERROR " + strconv.Itoa(int(code)) + state + ": " + string(msg)
}

// declaredMySQL asks for the session's wait_timeout, in seconds.
func (t *Target) declaredMySQL(ctx context.Context, d *rstpool.Dialer) (Setting, error) {
	s, err := t.connectMySQL(ctx, d)
	if err != nil {
		return Setting{}, err
	}
	defer s.Close()
	var v string
	if s.c.QueryRowContext(ctx, "SELECT @@SESSION.wait_timeout").Scan(&v) != nil {
		return Setting{}, nil
	}
	return secondsSetting("wait_timeout", v, " for this session"), nil
}
