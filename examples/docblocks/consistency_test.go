package docblocks

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The go-redis recipe is one and the same in the README, CLIENTS.md and
// examples/redis: the idle limit from Dialer.Limits, which applies the
// defaults (a zero Dialer's Chain.ClientIdleTimeout is not its limit).
func TestOneRedisRecipe(t *testing.T) {
	recipe := []string{
		"idle, _, _ := d.Limits() // the Dialer's idle limit, defaults and chain applied",
		"Dialer: d.DialContext, ConnMaxIdleTime: idle,",
		"DialerRetries: 1}) // the Dialer already retries refused connects",
	}
	for _, f := range []string{"../../README.md", "../../CLIENTS.md", "../redis/main.go"} {
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range recipe {
			require.Contains(t, string(text), line, "%s: the go-redis recipe differs", f)
		}
		require.NotContains(t, string(text), "ConnMaxIdleTime: d.Chain.ClientIdleTimeout()", f)
	}
}

// removed names the core no longer has; prose naming them misleads even
// where no Go block uses them.
var removed = regexp.MustCompile(`\b(MarkUsed|SetIdleLimit|PingAfterIdle|DefaultRetryMethods|HTTP2PingAfter|HTTP2PingTimeout)\b|` +
	`\.(IdleLimit|Failure)\(\)|ConnStats\.(Exchanges|Uses)|\.Exchanges\b`)

func TestNoRemovedNames(t *testing.T) {
	for _, f := range markdown(t) {
		text, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for i, line := range strings.Split(string(text), "\n") {
			if m := removed.FindString(line); m != "" {
				t.Errorf("%s:%d names %q, which rstpool no longer has", filepath.Base(f), i+1, m)
			}
		}
	}
}
