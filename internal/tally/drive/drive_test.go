package drive

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool"
)

// The scenario makes the core report what the metrics tests expect.
func TestDriveReportsEveryKind(t *testing.T) {
	r := Start(t, func(rstpool.Event) {})
	r.Drive(t)
	got := map[string]int{}
	for _, e := range r.Events() {
		if e.Source != "dialer" {
			got[e.Source+" "+e.Kind.String()]++
		}
	}
	require.Equal(t, Expected, got)
	for _, e := range r.Events() {
		t.Logf("%+v", e)
	}
}
