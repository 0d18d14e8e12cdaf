package demo

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScheduleIsDeterministic(t *testing.T) {
	w := Workload{Requests: 500, Seed: 7, Idle: time.Second, LongGaps: 0.3}
	a, b := w.Schedule(), w.Schedule()
	require.Equal(t, a, b)
	w.Seed = 8
	require.NotEqual(t, a, w.Schedule())
}

func TestScheduleShape(t *testing.T) {
	w := Workload{Requests: 2000, Seed: 1, Idle: time.Second, LongGaps: 0.25}
	sched := w.Schedule()
	require.Zero(t, sched[0].Gap)
	ids, long := 0, 0
	kinds := map[Kind]int{}
	for _, b := range sched {
		require.LessOrEqual(t, len(b.Requests), maxBurst)
		if b.Gap > w.Idle {
			long++
			require.Less(t, b.Gap, 17*w.Idle/10)
		} else {
			require.LessOrEqual(t, b.Gap, w.Idle/2)
		}
		for _, r := range b.Requests {
			require.Equal(t, ids, r.ID)
			ids++
			kinds[r.Kind]++
			require.Equal(t, r.Kind == KindGet, r.Body == 0)
		}
	}
	require.Equal(t, w.Requests, ids)
	require.InDelta(t, 0.25, float64(long)/float64(len(sched)-1), 0.1)
	for k := range numHTTPKinds {
		require.Greater(t, kinds[k], w.Requests/10, k.String())
	}
	require.Greater(t, Length(sched), time.Duration(len(sched))*w.Idle/5)
}

func TestKinds(t *testing.T) {
	require.True(t, KindPut.Idempotent())
	require.True(t, KindPostKeyed.Idempotent())
	require.False(t, KindPost.Idempotent())
	require.False(t, KindWrite.Idempotent())
	require.True(t, KindRead.Idempotent())
	require.Equal(t, "POST", KindPostKeyed.Method())
	require.Equal(t, "post_keyed", KindPostKeyed.String())
	require.Equal(t, KindRead, KindPut.dbKind())
	require.Equal(t, KindWrite, KindPostKeyed.dbKind())
}
