package integration

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
	"github.com/stretchr/testify/require"
)

// pgWire is a loopback relay to PostgreSQL that reads the frontend's
// messages as they pass: it counts pings (pgconn's Ping is the simple
// query "-- ping") and Terminate messages, the driver's goodbye.
type pgWire struct {
	ln         net.Listener
	pings      atomic.Int64
	terminates atomic.Int64
	wg         sync.WaitGroup
}

func startPGWire(t *testing.T) *pgWire {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := &pgWire{ln: ln}
	w.wg.Add(1)
	go w.accept()
	t.Cleanup(func() { ln.Close(); w.wg.Wait() })
	return w
}

func (w *pgWire) addr() string { return w.ln.Addr().String() }

func (w *pgWire) accept() {
	defer w.wg.Done()
	for {
		c, err := w.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", pgAddr())
		if err != nil {
			c.Close()
			continue
		}
		w.wg.Add(2)
		go func() { defer w.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		go func() { defer w.wg.Done(); w.frontend(c, up); up.Close() }()
	}
}

// frontend relays the client's messages, counting those of interest. The
// relay needs sslmode=disable: it reads the plain protocol.
func (w *pgWire) frontend(c, up net.Conn) {
	var head [5]byte
	if _, err := io.ReadFull(c, head[:4]); err != nil { // the startup message: length, no type byte
		return
	}
	n := int(binary.BigEndian.Uint32(head[:4]))
	rest := make([]byte, n-4)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	if _, err := up.Write(append(head[:4:4], rest...)); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(c, head[:]); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(head[1:]))-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		switch {
		case head[0] == 'Q' && strings.HasPrefix(string(body), "-- ping"):
			w.pings.Add(1)
		case head[0] == 'X':
			w.terminates.Add(1)
		}
		if _, err := up.Write(append(head[:], body...)); err != nil {
			return
		}
	}
}

// rstpgx.OpenDB pings a connection idle more than a second at checkout,
// after its peek, as pgx's stdlib does: a peek cannot see a middlebox that
// forgot the connection silently. One ping each, on the wire.
func TestOpenDBPingsAtCheckoutAsStock(t *testing.T) {
	pgAdmin(t) // skips when PostgreSQL is down
	for _, ours := range []bool{false, true} {
		w := startPGWire(t)
		cc, err := pgx.ParseConfig("postgres://postgres@" + w.addr() + "/test?sslmode=disable")
		require.NoError(t, err)
		var db *sql.DB
		if ours {
			db = rstpgx.OpenDB(*cc, &rstpool.Dialer{})
		} else {
			db = stdlib.OpenDB(*cc)
		}
		t.Cleanup(func() { db.Close() }) // before the wire's cleanup waits for its connections
		db.SetMaxOpenConns(1)
		var one int
		require.NoError(t, db.QueryRow("select 1").Scan(&one))
		time.Sleep(2100 * time.Millisecond)
		require.NoError(t, db.QueryRow("select 1").Scan(&one))
		t.Logf("rstpool %v: pings at checkout after 2 s idle: %d", ours, w.pings.Load())
		require.Equal(t, int64(1), w.pings.Load(), "rstpool %v: a connection idle over a second is pinged, as stock pgx stdlib does", ours)
	}
}

// A connection the client's own policy retires (idle limit, lifetime)
// while its server is alive says goodbye through the driver: pgx sends
// Terminate before the socket closes, for pgxpool and database/sql alike.
func TestRetiredConnectionsSayGoodbye(t *testing.T) {
	pgAdmin(t)
	d := &rstpool.Dialer{IdleTimeout: 300 * time.Millisecond}
	ctx := context.Background()
	run := func(t *testing.T, w *pgWire, query func() error) {
		require.NoError(t, query())
		time.Sleep(500 * time.Millisecond) // beyond the idle limit: retired at the next checkout
		require.NoError(t, query())
		require.Eventually(t, func() bool { return w.terminates.Load() == 1 }, 2*time.Second, 10*time.Millisecond,
			"the retired connection sent Terminate (%d)", w.terminates.Load())
	}
	t.Run("pgxpool", func(t *testing.T) {
		w := startPGWire(t)
		cfg, err := pgxpool.ParseConfig("postgres://postgres@" + w.addr() + "/test?sslmode=disable")
		require.NoError(t, err)
		cfg.MaxConns = 1
		rstpgx.Configure(cfg, d)
		cfg.HealthCheckPeriod = time.Hour // the checkout retires it, not the background sweep
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		defer pool.Close()
		var one int
		run(t, w, func() error { return pool.QueryRow(ctx, "select 1").Scan(&one) })
	})
	t.Run("database/sql", func(t *testing.T) {
		w := startPGWire(t)
		cc, err := pgx.ParseConfig("postgres://postgres@" + w.addr() + "/test?sslmode=disable")
		require.NoError(t, err)
		db := rstpgx.OpenDB(*cc, d)
		defer db.Close()
		db.SetMaxOpenConns(1)
		var one int
		run(t, w, func() error { return db.QueryRow("select 1").Scan(&one) })
	})
}
