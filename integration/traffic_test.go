package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// Traffic while a server restarts: bounded in goroutines, operations and
// time.
const (
	trafficWorkers = 6
	trafficMaxOps  = 1000 // per worker
	trafficPause   = 5 * time.Millisecond
	trafficWarmup  = 300 * time.Millisecond
	trafficAfter   = 700 * time.Millisecond
	trafficOpLimit = 20 * time.Second // per operation: longer than any restart here
)

// trafficRun is what one client surfaced while the server restarted under
// its traffic, and what the table says about its writes.
type trafficRun struct {
	result
	mu        sync.Mutex
	okIDs     []int64 // INSERTs that reported success
	failedIDs []int64 // INSERTs that reported an error: outcome unknown
	dupes     atomic.Int64
	retried   atomic.Int64   // operations the retry helper ran a second time
	present   int64          // failed INSERTs whose row exists anyway
	classes   map[string]int // "read peer-closed", "write refused": errors by operation and class
	samples   []string       // the first error of each class
	refusing  time.Duration
	restart   time.Duration
}

// count notes err by operation and class; r.mu is held.
func (r *trafficRun) count(op string, err error) {
	if err == nil {
		return
	}
	if r.classes == nil {
		r.classes = map[string]int{}
	}
	key := op + " " + rstpool.Classify(err).String()
	if r.classes[key] == 0 {
		r.samples = append(r.samples, key+": "+err.Error())
	}
	r.classes[key]++
}

func (r *trafficRun) String() string {
	return fmt.Sprintf("%s; by class %v; unknown-outcome writes %d (%d present); retried %d; duplicate-key errors %d; port refused %v, ready after %v",
		&r.result, r.classes, len(r.failedIDs), r.present, r.retried.Load(), r.dupes.Load(),
		r.refusing.Round(10*time.Millisecond), r.restart.Round(10*time.Millisecond)) + "; samples: " + strings.Join(r.samples, " | ")
}

// op runs one read and one INSERT and notes the outcome of each.
func (r *trafficRun) op(tg target, id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), trafficOpLimit)
	defer cancel()
	atomic.AddInt64(&r.reads, 1)
	rerr := tg.read(ctx)
	r.note(rerr, &r.readErrs)
	r.mu.Lock()
	r.count("read", rerr)
	r.mu.Unlock()
	atomic.AddInt64(&r.writes, 1)
	err := tg.write(ctx, id)
	r.note(err, &r.writeErrs)
	if isDuplicateKey(err) {
		r.dupes.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count("write", err)
	if err == nil {
		r.okIDs = append(r.okIDs, id)
	} else {
		r.failedIDs = append(r.failedIDs, id)
	}
}

// underRestart runs the traffic on tg, restarts svc once in the middle,
// and lets the traffic run a little longer; r collects the outcomes.
func underRestart(t *testing.T, r *trafficRun, tg target, svc service) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range trafficWorkers {
		wg.Go(func() {
			for range trafficMaxOps {
				select {
				case <-stop:
					return
				default:
				}
				r.op(tg, nextID.Add(1))
				time.Sleep(trafficPause)
			}
		})
	}
	time.Sleep(trafficWarmup)
	r.refusing, r.restart = svc.restart(t)
	time.Sleep(trafficAfter)
	close(stop)
	wg.Wait()
}

// audit checks the INSERTs against the table's ids: each one reported
// successful is there once, none is there that was never sent, and the
// failed ones are counted as present or absent (either is legitimate).
func (r *trafficRun) audit(t *testing.T, ids []int64) {
	t.Helper()
	seen := make(map[int64]int, len(ids))
	for _, id := range ids {
		seen[id]++
		require.Equal(t, 1, seen[id], "id %d is in the table twice", id)
	}
	for _, id := range r.okIDs {
		require.Equal(t, 1, seen[id], "a write reported successful is lost: id %d", id)
		delete(seen, id)
	}
	for _, id := range r.failedIDs {
		if seen[id] == 1 {
			r.present++
			delete(seen, id)
		}
	}
	require.Empty(t, seen, "rows that no write of this run sent")
	r.rows = int64(len(ids))
}

// restartSideBySide runs a restart scenario with the stock client and with
// rstpool's, records both for the table, and asserts rstpool surfaced no
// duplicate and at most tolerate errors to idempotent work.
func restartSideBySide(t *testing.T, name string, tolerate int64, run func(t *testing.T, ours bool) *trafficRun) {
	t.Helper()
	res := map[bool]*trafficRun{}
	for _, ours := range []bool{false, true} {
		label := map[bool]string{false: "stock", true: "rstpool"}[ours]
		t.Run(label, func(t *testing.T) {
			r := run(t, ours)
			res[ours] = r
			t.Logf("%s %s: %s", name, label, r)
		})
	}
	stock, ours := res[false], res[true]
	if stock == nil || ours == nil {
		return
	}
	record(name, &stock.result, &ours.result)
	require.Zero(t, ours.dupes.Load(), "rstpool ran a write twice")
	require.LessOrEqual(t, ours.readErrs, tolerate, "rstpool surfaced errors to idempotent work: %s", ours)
	// An INSERT in flight when the server ended its session may have
	// committed: it must surface (unknown outcome). One that never reached
	// a server, because connecting failed during the restart, must not.
	require.Zero(t, ours.classes["write refused"], "a write failed to connect: %s", ours)
	require.LessOrEqual(t, ours.writeErrs, int64(trafficWorkers), "at most the writes in flight at the restart: %s", ours)
}

// isDuplicateKey reports a unique violation: PostgreSQL 23505, MySQL 1062.
func isDuplicateKey(err error) bool {
	var st interface{ SQLState() string }
	var my *mysql.MySQLError
	return (errors.As(err, &st) && st.SQLState() == "23505") || (errors.As(err, &my) && my.Number == 1062)
}

// withRetry runs tg's reads (idempotent) and writes (not) through retry,
// counting in r the operations it ran a second time.
func withRetry(tg target, r *trafficRun, retry func(context.Context, bool, func(context.Context) error) error) target {
	run := func(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
		var attempts atomic.Int32
		err := retry(ctx, idempotent, func(ctx context.Context) error {
			attempts.Add(1)
			return fn(ctx)
		})
		if attempts.Load() > 1 {
			r.retried.Add(1)
		}
		return err
	}
	return target{
		read: func(ctx context.Context) error { return run(ctx, true, tg.read) },
		write: func(ctx context.Context, id int64) error {
			return run(ctx, false, func(ctx context.Context) error { return tg.write(ctx, id) })
		},
		rows: tg.rows,
	}
}
