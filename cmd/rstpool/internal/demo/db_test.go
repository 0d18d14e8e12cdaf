package demo

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool"
)

// tcpStore is a Store whose Prepare only connects: enough to be skipped.
type tcpStore struct{ addr string }

func (s tcpStore) About() string       { return "tcp" }
func (s tcpStore) Idle() time.Duration { return 0 }
func (s tcpStore) Prepare(ctx context.Context) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err == nil {
		c.Close()
	}
	return err
}
func (s tcpStore) Read(context.Context, string, int) error              { return nil }
func (s tcpStore) Write(context.Context, string, int) error             { return nil }
func (s tcpStore) Applied(context.Context, string) (map[int]int, error) { return nil, nil }
func (s tcpStore) Forget(context.Context, string) error                 { return nil }
func (s tcpStore) Close()                                               {}

// withLeg registers db for the test.
func withLeg(t *testing.T, db Database) {
	known, dbs := Known, databases
	Known = append(Known[:len(Known):len(Known)], db.Name)
	t.Cleanup(func() { Known, databases = known, dbs })
	RegisterDatabase(db)
}

// A database that does not listen is skipped, with how to start it, or
// fails the run when required.
func TestDatabaseSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	withLeg(t, Database{Name: "closed", Addr: addr, Start: "closed-server --start", Retry: Once,
		Open: func(addr string, _ *rstpool.Dialer, _ int) (Store, error) { return tcpStore{addr}, nil }})

	cfg := testConfig(20, Faults{})
	cfg.Databases = []string{"closed"}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Databases, 1)
	res := rep.Databases[0]
	require.Contains(t, res.Skipped, "not reachable at "+addr)
	require.Contains(t, res.Skipped, "refused")
	require.Contains(t, res.Skipped, "start it (closed-server --start)")
	require.Empty(t, res.Clients)

	cfg.RequireDatabases = true
	_, err = Run(context.Background(), cfg)
	require.ErrorContains(t, err, "closed required but not reachable at "+addr)
}

// This package's tests link no leg in: a known one is not in the build,
// with how to build it in; an unknown one is unknown.
func TestDatabaseNotBuiltIn(t *testing.T) {
	require.Empty(t, DatabaseNames())
	_, err := Run(context.Background(), Config{Databases: []string{"postgres"}})
	require.ErrorIs(t, err, ErrNotBuiltIn)
	require.ErrorContains(t, err, "link package demodb")
	_, err = Run(context.Background(), Config{Databases: []string{"oracle"}})
	require.False(t, errors.Is(err, ErrNotBuiltIn))
	require.ErrorContains(t, err, `"oracle": want one of postgres, mysql, redis`)
}

func TestTallyWrites(t *testing.T) {
	require.Equal(t, ServerTally{Arrivals: 4, Distinct: 3, Duplicates: 1}, tallyWrites(map[int]int{1: 2, 2: 1, 3: 1}))
	require.Equal(t, ServerTally{}, tallyWrites(nil))
}
