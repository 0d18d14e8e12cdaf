package integration

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// restartMu serializes the restart tests: one server down at a time.
var restartMu sync.Mutex

// restartAllowed skips unless RSTPOOL_RESTART_TESTS=1: a restart breaks
// every other client of the server, so these tests run only when the
// integration module runs alone (as .ci/run does).
func restartAllowed(t *testing.T) {
	t.Helper()
	if os.Getenv("RSTPOOL_RESTART_TESTS") != "1" {
		t.Skip("restarts the server: set RSTPOOL_RESTART_TESTS=1 and run the integration module alone")
	}
	restartMu.Lock()
	t.Cleanup(restartMu.Unlock)
}

// pgRestart restarts the local cluster and makes sure it runs afterwards.
func pgRestart(t *testing.T) {
	t.Helper()
	out, err := exec.Command("pg_ctlcluster", "15", "main", "restart").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestPGRestartWhileIdle(t *testing.T) {
	restartAllowed(t)
	s := newPGScenario(t, "restart_idle")
	t.Cleanup(func() { _ = exec.Command("pg_ctlcluster", "15", "main", "start").Run() })
	sideBySide(t, "PostgreSQL restart while the pool idles, pgxpool", false, func(t *testing.T, ours bool) *result {
		s.admin = pgAdmin(t) // the previous run's did not survive its restart
		tg := s.open(t, "pgxpool", pgAddr(), dialerIf(ours, &rstpool.Dialer{}))
		r := burst(tg, 8)
		finish(t, tg, r)
		pgRestart(t)
		time.Sleep(500 * time.Millisecond) // past the "starting up" window
		s.admin = pgAdmin(t)
		s.reset(t)
		r2 := burst(tg, 8)
		finish(t, tg, r2)
		return r2
	})
}
