package integration

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer the driver's logger may write to from any
// goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Row 15 of "The mechanisms hold together", and issue 19's driver noise: a
// held sql.Conn that MariaDB kills while it sits idle for 200 ms. The next
// statement on it fails before a byte of it leaves, and the failure says
// the facts: a reused connection (a statement ran on it before), no byte of
// this statement written, closed by the peer while idle. rstpool does not
// close the socket under the driver, so the driver's goodbye does not log
// "use of closed network connection". Through the pool (db.Query), the
// statement succeeds on another connection.
func TestMySQLHeldConnKilledWhileIdle(t *testing.T) {
	s := newMyScenario(t, "held")
	var logged syncBuffer
	require.NoError(t, mysql.SetLogger(log.New(&logged, "[mysql] ", 0)))
	t.Cleanup(func() { _ = mysql.SetLogger(log.New(log.Writer(), "[mysql] ", log.Ldate|log.Ltime|log.Lshortfile)) })
	cfg, err := mysql.ParseDSN(s.user + "@" + myNetwork("rstpool_held", &rstpool.Dialer{}) + "(" + myAddr() + ")/test")
	require.NoError(t, err)
	connector, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(rstpool.WrapConnector(connector, &rstpool.Dialer{}))
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()

	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	var id int64
	require.NoError(t, conn.QueryRowContext(ctx, "select connection_id()").Scan(&id))
	time.Sleep(100 * time.Millisecond)
	s.exec(t, fmt.Sprintf("kill %d", id))
	time.Sleep(100 * time.Millisecond)
	var one int
	err = conn.QueryRowContext(ctx, "select 1").Scan(&one)
	require.Error(t, err, "a held connection is not replaced under its holder")
	ce := errorsAsConnError(err)
	require.NotNil(t, ce, "%v", err)
	require.True(t, ce.Reused, "%v", err)
	require.Zero(t, ce.Written, "the check before the write found it gone: %v", err)
	require.Equal(t, rstpool.CauseIdleReaped, ce.Cause(), "%v", err)
	require.NotContains(t, ce.Error(), "mid-exchange")
	_ = conn.Close()

	// Through the pool: the statement goes to another connection.
	require.NoError(t, db.QueryRowContext(ctx, "select connection_id()").Scan(&id))
	time.Sleep(100 * time.Millisecond)
	s.exec(t, fmt.Sprintf("kill %d", id))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, db.QueryRowContext(ctx, "select 1").Scan(&one))
	t.Logf("the driver logged:\n%s", logged.String())
	require.NotContains(t, logged.String(), "use of closed network connection")
	require.NotContains(t, logged.String(), "reaped by a hop", "the old cause's wording")
	require.NotContains(t, logged.String(), "mid-exchange", "no cause contradicts the facts")
	require.LessOrEqual(t, strings.Count(logged.String(), "[mysql]"), 2,
		"the held statement's failure, and no more than stock's one line for the pool's connection")
}

func errorsAsConnError(err error) *rstpool.ConnError {
	var ce *rstpool.ConnError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}
