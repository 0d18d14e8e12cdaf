package rstpool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 10, row 5: a declared middlebox whose half is not a whole second
// (61 s) made every dial fail on a field the user never set. Derived
// keepalive is rounded to whole seconds, and the kernel takes it.
func TestChainsWithMiddleboxesDial(t *testing.T) {
	addr := listen(t, echo).Addr().String()
	cases := []struct {
		idle time.Duration
		want sockopts
	}{
		{61 * time.Second, sockopts{1, 30, 10, 3, 60000}},
		{350 * time.Second, sockopts{1, 30, 10, 3, 60000}},
		{25 * time.Second, sockopts{1, 12, 10, 3, 42000}},
		{1500 * time.Millisecond, sockopts{1, 1, 10, 3, 31000}},
	}
	for _, tc := range cases {
		d := &Dialer{RefusedRetry: -1, Chain: Chain{{Name: "fw", IdleTimeout: tc.idle, Middlebox: true}, {Name: "api"}}}
		require.Equal(t, tc.want, readSockopts(t, dialTracked(t, d, addr)), "middlebox %s", tc.idle)
	}
}
