package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A target is one client configuration under test.
type target struct {
	read  func(ctx context.Context) error           // idempotent work
	write func(ctx context.Context, id int64) error // an INSERT with a unique id
	rows  func(ctx context.Context) (int64, error)  // rows written so far
}

// result counts what one run surfaced to its callers.
type result struct {
	reads, readErrs   int64
	writes, writeErrs int64
	rows              int64
	firstErr          atomic.Value
}

func (r *result) note(err error, errs *int64) {
	if err != nil {
		atomic.AddInt64(errs, 1)
		r.firstErr.CompareAndSwap(nil, err.Error())
	}
}

func (r *result) String() string {
	s := fmt.Sprintf("reads %d/%d failed, writes %d/%d failed, rows %d", r.readErrs, r.reads, r.writeErrs, r.writes, r.rows)
	if e, ok := r.firstErr.Load().(string); ok {
		s += "; first error: " + e
	}
	return s
}

// op runs one read and one write with a bounded context.
func (r *result) op(tg target, id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	atomic.AddInt64(&r.reads, 1)
	r.note(tg.read(ctx), &r.readErrs)
	atomic.AddInt64(&r.writes, 1)
	r.note(tg.write(ctx, id), &r.writeErrs)
}

var nextID atomic.Int64

// gaps runs workers goroutines, each doing iters operations separated by
// random pauses in [lo, hi): the pattern that meets a server idle timeout.
func gaps(tg target, workers, iters int, lo, hi time.Duration) *result {
	r := &result{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range iters {
				time.Sleep(lo + rand.N(hi-lo))
				r.op(tg, nextID.Add(1))
			}
		})
	}
	wg.Wait()
	return r
}

// burst runs n operations at once.
func burst(tg target, n int) *result {
	r := &result{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { r.op(tg, nextID.Add(1)) })
	}
	wg.Wait()
	return r
}

// finish counts the rows and checks the write workload: every write that
// succeeded is there once, and none that failed is (a failed INSERT that
// ran anyway, or ran twice, breaks the count).
func finish(t *testing.T, tg target, r *result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := tg.rows(ctx)
	require.NoError(t, err)
	r.rows = n
}

// sideBySide runs a scenario with the stock configuration and with
// rstpool's, logs both, records them for the summary table and asserts
// rstpool surfaced no error and kept the write count exact. With
// stockFails, the stock run must have failed at least once.
func sideBySide(t *testing.T, name string, stockFails bool, run func(t *testing.T, rstpool bool) *result) {
	t.Helper()
	res := map[bool]*result{}
	for _, mode := range []bool{false, true} {
		label := map[bool]string{false: "stock", true: "rstpool"}[mode]
		t.Run(label, func(t *testing.T) {
			r := run(t, mode)
			res[mode] = r
			t.Logf("%s %s: %s", name, label, r)
			require.Equal(t, r.writes-r.writeErrs, r.rows, "%s: every successful write is there exactly once", label)
		})
	}
	stock, ours := res[false], res[true]
	if stock == nil || ours == nil {
		return
	}
	record(name, stock, ours)
	require.Zero(t, ours.readErrs+ours.writeErrs, "rstpool surfaced errors: %s", ours)
	if stockFails {
		require.Positive(t, stock.readErrs+stock.writeErrs, "the stock client was expected to fail here")
	}
}

var (
	tableMu sync.Mutex
	table   []string
)

func record(name string, stock, ours *result) {
	tableMu.Lock()
	defer tableMu.Unlock()
	table = append(table, fmt.Sprintf("| %s | %d/%d | %d/%d |", name,
		stock.readErrs+stock.writeErrs, stock.reads+stock.writes,
		ours.readErrs+ours.writeErrs, ours.reads+ours.writes))
}

func TestMain(m *testing.M) {
	keepInheritedFDs()
	code := m.Run()
	if len(table) > 0 {
		sort.Strings(table)
		fmt.Println("| scenario | stock errors/ops | rstpool errors/ops |\n|---|---|---|\n" + strings.Join(table, "\n"))
	}
	os.Exit(code)
}

// unreachable skips the test, or fails it when RSTPOOL_REQUIRE_SERVICES=1.
func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s unreachable: %v", what, err)
	}
	t.Skipf("%s unreachable (%v): start it (.ci/run starts the local servers), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", what, err)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
