// Package dbprobe opens the sessions of "rstpool probe --dsn": it logs in
// to PostgreSQL (or PgBouncer), MySQL or MariaDB, or Redis through the
// real drivers (pgx, go-sql-driver/mysql, go-redis) with the user's own
// credentials, so that the probe measures the idle timeout a pooled
// session meets after login, not the server's pre-login timeout.
package dbprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
)

// The kinds of server a Target names.
const (
	Postgres = "postgres" // PostgreSQL, or PgBouncer in front of it
	MySQL    = "mysql"    // MySQL or MariaDB
	Redis    = "redis"
)

// A Target is a database to probe, parsed from a URL.
type Target struct {
	Kind string // Postgres, MySQL or Redis
	Addr string // host:port, for the report
	URL  string // the URL as given, its password hidden

	// Login bounds a session's login and first statement; zero means 15s.
	Login time.Duration

	pg *pgx.ConnConfig
	my *mysql.Config
	rd *redis.Options
}

// Forms lists the URL forms Parse accepts, for messages and the help.
const Forms = "postgres://USER:PASSWORD@HOST:PORT/DB?PARAMS (or postgresql://), " +
	"mysql://USER:PASSWORD@HOST:PORT/DB?PARAMS (or go-sql-driver/mysql's USER:PASSWORD@tcp(HOST:PORT)/DB?PARAMS), " +
	"redis://USER:PASSWORD@HOST:PORT/DB (or rediss:// for TLS)"

// Parse reads a database URL (see Forms). Its error never shows the
// password.
func Parse(dsn string) (*Target, error) {
	scheme, _, hasScheme := strings.Cut(dsn, "://")
	t := &Target{URL: redact(dsn)}
	var err error
	switch {
	case scheme == "postgres" || scheme == "postgresql":
		err = t.parsePostgres(dsn)
	case scheme == "mysql":
		err = t.parseMySQLURL(dsn)
	case scheme == "redis" || scheme == "rediss":
		err = t.parseRedis(dsn)
	case !hasScheme && (strings.Contains(dsn, "@tcp(") || strings.HasPrefix(dsn, "tcp(")):
		err = t.parseMySQLDSN(dsn)
	default:
		return nil, fmt.Errorf("%q: want one of %s", t.URL, Forms)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s", t.URL, scrub(err.Error(), dsn))
	}
	return t, nil
}

func (t *Target) parsePostgres(dsn string) error {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	t.Kind, t.pg = Postgres, cc
	t.Addr = net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	return nil
}

// parseMySQLURL reads mysql://USER:PASSWORD@HOST:PORT/DB?PARAMS: the
// parameters are go-sql-driver/mysql's (tls, timeout, ...), and any other
// is a system variable the driver sets for the session (wait_timeout=60).
func (t *Target) parseMySQLURL(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg, err := mysql.ParseDSN("tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/") + querySuffix(u.RawQuery))
	if err != nil {
		return err
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	t.setMySQL(cfg)
	return nil
}

func querySuffix(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

func (t *Target) parseMySQLDSN(dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	t.setMySQL(cfg)
	return nil
}

func (t *Target) setMySQL(cfg *mysql.Config) {
	t.Kind, t.my, t.Addr = MySQL, cfg, cfg.Addr
}

func (t *Target) parseRedis(dsn string) error {
	opt, err := redis.ParseURL(dsn)
	if err != nil {
		return err
	}
	t.Kind, t.rd, t.Addr = Redis, opt, opt.Addr
	return nil
}

// Sessions returns what the probe opens: a login and one statement per
// session, through the target's driver.
func (t *Target) Sessions() *diag.Sessions {
	switch t.Kind {
	case Postgres:
		return &diag.Sessions{Name: Postgres, Mode: "pgx: a login and SELECT 1 per session, SELECT 1 per check",
			Open: t.openPostgres}
	case MySQL:
		return &diag.Sessions{Name: MySQL, Mode: "go-sql-driver/mysql: a login and SELECT 1 per session, SELECT 1 per check",
			Open: t.openMySQL}
	}
	return &diag.Sessions{Name: Redis, Mode: "go-redis: a login (HELLO, AUTH) and PING, TIME, then PING just before the " +
		"server's clock turns a second, per session; PING per check", Open: t.openRedis}
}

// A Setting is the server's own idle timeout for the probe's sessions.
type Setting struct {
	Text    string        // as the server says it: "idle_session_timeout = 2s for this session"; "" when it did not say
	Timeout time.Duration // zero: none (or unknown when Text is "")
}

// Declared logs in once and asks the server for its own idle timeout of
// this session: PostgreSQL's idle_session_timeout, MySQL's wait_timeout,
// Redis's timeout. The Setting is empty when the server does not say (an
// older version, a command the user may not run); the error says why the
// login failed.
func (t *Target) Declared(ctx context.Context, d *rstpool.Dialer) (Setting, error) {
	ctx, cancel := context.WithTimeout(ctx, t.login())
	defer cancel()
	switch t.Kind {
	case Postgres:
		return t.declaredPostgres(ctx, d)
	case MySQL:
		return t.declaredMySQL(ctx, d)
	}
	return t.declaredRedis(ctx, d)
}

// secondsSetting is a setting in whole seconds, 0 meaning none.
func secondsSetting(name, v, scope string) Setting {
	secs, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return Setting{Text: name + " = " + v + scope}
	case secs == 0:
		return Setting{Text: name + " = 0 (off)" + scope}
	}
	d := time.Duration(secs) * time.Second
	return Setting{Text: name + " = " + v + " (" + d.String() + ")" + scope, Timeout: d}
}

func (t *Target) login() time.Duration {
	if t.Login > 0 {
		return t.Login
	}
	return 15 * time.Second
}

// dialFunc dials through d; a failure reads as the net error under it.
func dialFunc(d *rstpool.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, diag.DialError(err)
		}
		return c, nil
	}
}

// loginError says which login failed, keeping the driver's error in the
// chain.
func (t *Target) loginError(err error) error {
	return fmt.Errorf("login to %s %s: %w", t.Kind, t.Addr, err)
}

// endedBy wraps the error of a statement that the server answered by
// closing the session (PostgreSQL's FATAL): the probe reports a FIN.
func endedBy(err error) error {
	return &serverClosed{err: err}
}

type serverClosed struct{ err error }

func (e *serverClosed) Error() string   { return e.err.Error() }
func (e *serverClosed) Unwrap() []error { return []error{e.err, diag.ErrPeerFIN} }

// errRedialed is what a session's dial function returns when its driver
// dials a second connection: a session is one connection, and a silent
// redial would hide the end being measured.
var errRedialed = errors.New("the driver dialed again: its connection ended")

// redact hides the password of a URL or of a go-sql-driver/mysql DSN,
// even one that does not parse.
func redact(dsn string) string {
	if start, end := password(dsn); end > start {
		return dsn[:start] + "xxxxx" + dsn[end:]
	}
	return dsn
}

// password returns where the password of a URL or a go-sql-driver/mysql
// DSN lies in it; start == end when it has none.
func password(dsn string) (start, end int) {
	from := 0
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		from = len(dsn) - len(rest)
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[:i]
		}
		end = from + strings.LastIndex(rest, "@")
	} else {
		end = strings.LastIndex(dsn, "@tcp(")
	}
	if end < from {
		return 0, 0
	}
	colon := strings.Index(dsn[from:end], ":")
	if colon < 0 {
		return 0, 0
	}
	return from + colon + 1, end
}

// scrub removes the password from a driver's message, in case it quotes
// the URL.
func scrub(msg, dsn string) string {
	start, end := password(dsn)
	pw := dsn[start:end]
	if len(pw) < 2 {
		return msg
	}
	if dec, err := url.PathUnescape(pw); err == nil && dec != pw && len(dec) >= 2 {
		msg = strings.ReplaceAll(msg, dec, "xxxxx")
	}
	return strings.ReplaceAll(msg, pw, "xxxxx")
}
