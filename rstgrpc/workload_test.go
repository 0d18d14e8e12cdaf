package rstgrpc_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A workload is rounds of concurrent unary calls, each round followed by an
// idle gap; the gaps straddle the idle timeouts under test, so that calls
// land just before, at and just after the moment a hop gives up a
// connection.
type workload struct {
	rounds  int
	workers int             // concurrent callers in a round
	calls   int             // calls each caller makes in a round, back to back
	gaps    []time.Duration // the gap after round r is gaps[r%len(gaps)]
	timeout time.Duration   // deadline of each call

	// pause, if set, replaces sleeping through the gap after round r.
	pause func(r int, gap time.Duration)
}

// tally counts what a workload's calls returned.
type tally struct {
	calls  int
	failed map[codes.Code]int
	sample map[codes.Code]string // one message per code, for the log
}

func (t tally) errors() int {
	n := 0
	for _, v := range t.failed {
		n += v
	}
	return n
}

func (w workload) run(hc healthpb.HealthClient) tally {
	out := tally{failed: map[codes.Code]int{}, sample: map[codes.Code]string{}}
	var mu sync.Mutex
	for r := range w.rounds {
		var wg sync.WaitGroup
		for range w.workers {
			wg.Go(func() {
				for range w.calls {
					err := check(hc, w.timeout)
					mu.Lock()
					out.add(err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if gap := w.gaps[r%len(w.gaps)]; w.pause != nil {
			w.pause(r, gap)
		} else {
			time.Sleep(gap)
		}
	}
	return out
}

func (t *tally) add(err error) {
	t.calls++
	if err == nil {
		return
	}
	st := status.Convert(err)
	t.failed[st.Code()]++
	t.sample[st.Code()] = st.Message()
}

// A leg is one client's run in a side-by-side comparison.
type leg struct {
	name   string
	result tally
	extra  map[string]int // counters of the servers or proxies it went through
}

// runLegs runs fn for each leg name at once and collects the legs.
func runLegs(names []string, fn func(i int) leg) []leg {
	legs := make([]leg, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() { legs[i] = fn(i); legs[i].name = names[i] })
	}
	wg.Wait()
	return legs
}

// table prints the legs side by side: calls, errors and errors by code,
// then the extra counters named in extras, in that order.
func table(title string, legs []leg, extras ...string) string {
	var b strings.Builder
	b.WriteString(title + "\n")
	row := func(label string, v func(leg) string) {
		fmt.Fprintf(&b, "%-34s", label)
		for _, l := range legs {
			fmt.Fprintf(&b, " %22s", v(l))
		}
		b.WriteString("\n")
	}
	row("", func(l leg) string { return l.name })
	row("calls", func(l leg) string { return fmt.Sprint(l.result.calls) })
	row("errors surfaced", func(l leg) string { return fmt.Sprint(l.result.errors()) })
	for _, c := range codesSeen(legs) {
		row("  "+c.String(), func(l leg) string { return fmt.Sprint(l.result.failed[c]) })
	}
	for _, e := range extras {
		row(e, func(l leg) string { return fmt.Sprint(l.extra[e]) })
	}
	for _, l := range legs {
		for c, m := range l.result.sample {
			fmt.Fprintf(&b, "%s, %s: %s\n", l.name, c, m)
		}
	}
	return b.String()
}

func codesSeen(legs []leg) []codes.Code {
	var cs []codes.Code
	for _, l := range legs {
		for c := range l.result.failed {
			if !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
	}
	slices.Sort(cs)
	return cs
}

// requireNoWorse asserts that every rstgrpc leg (all legs after the first,
// the stock client) surfaced no error of any code and no more than stock
// in any cell.
func requireNoWorse(t *testing.T, legs []leg) {
	t.Helper()
	requireAtMostStock(t, legs)
	for _, l := range legs[1:] {
		require.Zero(t, l.result.errors(), "%s: errors surfaced", l.name)
	}
}

// requireAtMostStock asserts that no leg surfaced more errors of any code
// than the stock client (legs[0]), over the same calls.
func requireAtMostStock(t *testing.T, legs []leg) {
	t.Helper()
	stock := legs[0].result
	for _, l := range legs[1:] {
		for _, c := range codesSeen(legs) {
			require.LessOrEqual(t, l.result.failed[c], stock.failed[c], "%s: %s errors above stock", l.name, c)
		}
		require.Equal(t, stock.calls, l.result.calls, "%s: calls made", l.name)
	}
}
