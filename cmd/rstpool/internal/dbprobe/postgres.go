package dbprobe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
	"github.com/rstpool/rstpool/rstpgx"
)

// pgSession is one pgx connection. It uses the simple protocol, which
// PgBouncer in any pool mode passes through.
type pgSession struct {
	c        *pgx.Conn
	farewell string // the FATAL a check received, if any
}

// connectPostgres logs in through d and runs stmt once.
func (t *Target) connectPostgres(ctx context.Context, d *rstpool.Dialer) (*pgx.Conn, error) {
	cc := t.pg.Copy()
	cc.DialFunc = dialFunc(d)
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, t.loginError(err)
	}
	return c, nil
}

func (t *Target) openPostgres(ctx context.Context, d *rstpool.Dialer) (diag.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, t.login())
	defer cancel()
	c, err := t.connectPostgres(ctx, d)
	if err != nil {
		return nil, err
	}
	s := &pgSession{c: c}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		s.Close()
		return nil, fmt.Errorf("SELECT 1 on %s: %w", t.Addr, err)
	}
	return s, nil
}

func (s *pgSession) Tracked() *rstpool.Conn { return rstpgx.Tracked(s.c) }

// Exchange runs SELECT 1. A FATAL in answer is the server closing the
// session (a FATAL that arrived while it idled, read now).
func (s *pgSession) Exchange(ctx context.Context) error {
	_, err := s.c.Exec(ctx, "SELECT 1")
	if pe := fatal(err); pe != nil {
		s.farewell = pgFarewell(pe)
		return endedBy(err)
	}
	return err
}

// Farewell reads the message the server sent before it closed, without
// sending anything: PostgreSQL's idle_session_timeout sends FATAL 57P05,
// PgBouncer's client_idle_timeout FATAL 08P01 "client_idle_timeout".
func (s *pgSession) Farewell(ctx context.Context) string {
	if s.farewell != "" {
		return s.farewell
	}
	if pe := fatal(s.c.PgConn().WaitForNotification(ctx)); pe != nil {
		s.farewell = pgFarewell(pe)
	}
	return s.farewell
}

func (s *pgSession) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	return s.c.Close(ctx)
}

// fatal returns err's PostgreSQL error when it ends the session.
func fatal(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Severity == "FATAL" || pe.Severity == "PANIC") {
		return pe
	}
	return nil
}

func pgFarewell(pe *pgconn.PgError) string {
	return fmt.Sprintf("%s %s: %s", pe.Severity, pe.Code, pe.Message)
}

// declaredPostgres asks for idle_session_timeout (PostgreSQL 14 and
// later; through PgBouncer, the server's behind it).
func (t *Target) declaredPostgres(ctx context.Context, d *rstpool.Dialer) (Setting, error) {
	c, err := t.connectPostgres(ctx, d)
	if err != nil {
		return Setting{}, err
	}
	defer (&pgSession{c: c}).Close()
	var v string
	if c.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&v) != nil {
		return Setting{}, nil
	}
	timeout, ok := pgDuration(v)
	if ok && timeout == 0 {
		v = "0 (off)"
	}
	return Setting{Text: "idle_session_timeout = " + v + " for this session", Timeout: timeout}, nil
}

// pgDuration reads a time setting as SHOW prints it: "0", "500ms", "2s",
// "10min", "1h", "1d".
func pgDuration(v string) (time.Duration, bool) {
	i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(v)
	}
	n, err := strconv.Atoi(v[:i])
	unit, ok := map[string]time.Duration{"": time.Millisecond, "ms": time.Millisecond, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[v[i:]]
	if err != nil || !ok {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
