package rstpgx

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// startingUp is a loopback listener in front of the test PostgreSQL that
// answers the first `refuse` connects as a server that is still starting
// up would (read the startup message, reply FATAL with code, close), and
// relays the later ones to the real server.
type startingUp struct {
	ln      net.Listener
	code    string
	refuse  int64
	accepts atomic.Int64
	wg      sync.WaitGroup
}

func newStartingUp(t *testing.T, code string, refuse int64) *startingUp {
	t.Helper()
	upstream := "127.0.0.1:5432"
	if c, err := net.DialTimeout("tcp", upstream, time.Second); err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s unreachable: %v", upstream, err)
		}
		t.Skipf("PostgreSQL at %s unreachable (%v); start it, or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", upstream, err)
	} else {
		c.Close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &startingUp{ln: ln, code: code, refuse: refuse}
	s.wg.Go(func() { s.serve(upstream) })
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *startingUp) serve(upstream string) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := s.accepts.Add(1)
		s.wg.Go(func() {
			defer c.Close()
			if n <= s.refuse {
				s.reject(c)
				return
			}
			relay(c, upstream)
		})
	}
}

// reject reads the startup message and answers with a FATAL error.
func (s *startingUp) reject(c net.Conn) {
	var size uint32
	if binary.Read(c, binary.BigEndian, &size) != nil || size < 4 {
		return
	}
	if _, err := io.CopyN(io.Discard, c, int64(size-4)); err != nil {
		return
	}
	msg, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: s.code,
		Message: "the database system is starting up"}).Encode(nil)
	c.Write(msg)
}

func relay(c net.Conn, upstream string) {
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() })
	io.Copy(c, u)
	c.(*net.TCPConn).CloseWrite()
	wg.Wait()
}

func (s *startingUp) pool(t *testing.T, d *rstpool.Dialer) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@" + s.ln.Addr().String() + "/test?sslmode=disable")
	require.NoError(t, err)
	cfg.MinConns = 0
	if d != nil {
		Configure(cfg, d)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func startupPing(pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pool.Ping(ctx)
}

func TestConnectWaitsOutStartup(t *testing.T) {
	stock := newStartingUp(t, sqlStateCannotConnectNow, 3)
	err := startupPing(stock.pool(t, nil))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "stock pgx gives up at the first 57P03")
	require.Equal(t, rstpool.ClassRefused, rstpool.Classify(err))
	require.Equal(t, int64(1), stock.accepts.Load())

	ours := newStartingUp(t, sqlStateCannotConnectNow, 3)
	require.NoError(t, startupPing(ours.pool(t, &rstpool.Dialer{})))
	require.Equal(t, int64(4), ours.accepts.Load(), "three refusals, then the connect that works")
}

func TestConnectStartupBudget(t *testing.T) {
	s := newStartingUp(t, sqlStateCannotConnectNow, 1<<30)
	start := time.Now()
	err := startupPing(s.pool(t, &rstpool.Dialer{RefusedRetry: 300 * time.Millisecond}))
	require.Less(t, time.Since(start), 2*time.Second, "the budget bounds the waiting")
	require.Equal(t, rstpool.ClassRefused, rstpool.Classify(err), "the last refusal: %v", err)
	require.Greater(t, s.accepts.Load(), int64(2))
}

func TestConnectOtherServerErrorNotRetried(t *testing.T) {
	s := newStartingUp(t, "53300", 1) // too_many_connections
	err := startupPing(s.pool(t, &rstpool.Dialer{}))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "53300", pgErr.Code)
	require.ErrorIs(t, err, errStartupNotRetried, "the spare attempts are reported skipped")
	require.Equal(t, int64(1), s.accepts.Load(), "one attempt: only 57P03 is waited out")
}

func TestConnectNoStartupRetryWhenDisabled(t *testing.T) {
	s := newStartingUp(t, sqlStateCannotConnectNow, 1)
	require.Error(t, startupPing(s.pool(t, &rstpool.Dialer{RefusedRetry: -1})))
	require.Equal(t, int64(1), s.accepts.Load())
}

func TestRetriesWithin(t *testing.T) {
	b := rstpool.Backoff{Base: 25 * time.Millisecond, Cap: 400 * time.Millisecond}
	require.Zero(t, retriesWithin(0, b))
	require.Equal(t, 1, retriesWithin(30*time.Millisecond, b))
	require.Equal(t, maxStartupRetries, retriesWithin(time.Hour, b))
	require.Positive(t, retriesWithin(rstpool.DefaultRefusedRetry, b))
}
