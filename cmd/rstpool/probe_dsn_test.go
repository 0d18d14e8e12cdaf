package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool/cmd/rstpool/internal/dbprobe"
	"github.com/rstpool/rstpool/internal/diag"
	"github.com/stretchr/testify/require"
)

// The servers of "probe --dsn" tests, as .ci/run starts them.
const (
	pgAddr    = "127.0.0.1:5432"
	mysqlAddr = "127.0.0.1:3306"
	redisAddr = "127.0.0.1:6379"
	// dsnTimeout is the idle timeout each test gives its server, and
	// dsnMin and dsnMax the idle durations its probe tries: a bracket a
	// little wider than the timeout keeps each test to a few seconds.
	dsnTimeout = 2 * time.Second
	dsnMin     = "1.5s"
	dsnMax     = "2.4s"
)

// needService skips the test when nothing listens at addr (fails it under
// RSTPOOL_REQUIRE_SERVICES=1), saying how to start the server.
func needService(t *testing.T, name, addr, start string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s at %s unreachable: %v", name, addr, err)
	}
	t.Skipf("%s at %s unreachable (%v): start it (%s; .ci/run starts every server), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead",
		name, addr, err, start)
}

// probeDSN runs "rstpool probe --dsn" with the tests' bracket and returns
// its JSON result and progress output.
func probeDSN(t *testing.T, dsn string) (probeDSNJSON, string) {
	t.Helper()
	start := time.Now()
	st, out, errOut := runCmd("probe", "--dsn", dsn, "--min", dsnMin, "--max", dsnMax, "--json")
	took := time.Since(start)
	require.Equal(t, exitOK, st, errOut)
	var res probeDSNJSON
	decodeOne(t, out, &res)
	t.Logf("%s: declared %q; bracket [%dms, %dms], estimate %dms, end %s, outlived %dms, farewell %q; %d sessions in %s",
		res.DSN, res.Declared, res.AliveAtMs, res.DeadAtMs, res.EstimateMs, res.End, res.OutlivedMs, res.Farewell, res.Conns, took.Round(time.Millisecond))
	require.Less(t, took, 30*time.Second)
	require.NotContains(t, out+errOut, "secret", "the password never shows")
	return res, errOut
}

// requireFound checks that the probe found the timeout within 10 %: the
// bracket straddles it, give or take 10 %, and its midpoint is within 10 %.
func requireFound(t *testing.T, r probeDSNJSON, want time.Duration) {
	t.Helper()
	w := want.Milliseconds()
	require.LessOrEqual(t, r.AliveAtMs, w+w/10, "alive beyond the timeout")
	require.GreaterOrEqual(t, r.DeadAtMs, w-w/10, "dead before the timeout")
	require.InDelta(t, w, r.EstimateMs, float64(w)/10)
	require.Positive(t, r.ClientIdleMs, "advice given")
	require.Less(t, r.ClientIdleMs, r.AliveAtMs, "the advised client idle limit stays below the bracket")
}

// PostgreSQL's idle_session_timeout, set on a role of the test's own: the
// probe logs in as that role, sees the FATAL 57P05, and advises a hop.
func TestProbeDSNPostgres(t *testing.T) {
	t.Parallel()
	needService(t, "PostgreSQL", pgAddr, "pg_ctlcluster 15 main start")
	role := pgRole(t, fmt.Sprintf("rstpool_probe_%d", os.Getpid()), dsnTimeout)
	res, errOut := probeDSN(t, "postgres://"+role+":secret@"+pgAddr+"/test?sslmode=disable")
	requireFound(t, res, dsnTimeout)
	require.Equal(t, "postgres", res.Proto)
	require.Equal(t, "FIN", res.End)
	require.Equal(t, "idle_session_timeout = 2s for this session", res.Declared)
	require.EqualValues(t, 2000, res.DeclaredMs)
	require.Equal(t, "FATAL 57P05: terminating connection due to idle-session timeout", res.Farewell)
	require.Contains(t, res.Hop, `rstpool.Hop{Name: "postgres", IdleTimeout: `)
	require.Contains(t, errOut, "timeout in [", "progress on stderr")
}

// pgRole creates a login role whose sessions time out after idle, and
// drops it when the test ends.
func pgRole(t *testing.T, role string, idle time.Duration) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/postgres?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	ident := pgx.Identifier{role}.Sanitize()
	_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident) // a leftover of a killed run
	_, err = admin.Exec(ctx, "CREATE ROLE "+ident+" LOGIN PASSWORD 'secret'")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		_, err := admin.Exec(ctx, "DROP ROLE "+ident)
		require.NoError(t, err)
	})
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s SET idle_session_timeout = %d", ident, idle.Milliseconds()))
	require.NoError(t, err)
	return role
}

// MySQL's wait_timeout, set for the probe's sessions only: go-sql-driver
// sets a URL parameter it does not know as a session variable.
func TestProbeDSNMySQL(t *testing.T) {
	t.Parallel()
	needService(t, "MariaDB", mysqlAddr, "start-stop-daemon --start --background --exec /usr/sbin/mariadbd")
	res, _ := probeDSN(t, fmt.Sprintf("mysql://root@%s/test?wait_timeout=%d", mysqlAddr, int(dsnTimeout.Seconds())))
	requireFound(t, res, dsnTimeout)
	require.Equal(t, "mysql", res.Proto)
	require.Contains(t, []string{"FIN", "RST"}, res.End, "MariaDB resets, MySQL closes")
	require.Equal(t, "wait_timeout = 2 (2s) for this session", res.Declared)
	require.EqualValues(t, 2000, res.DeclaredMs)
	require.Contains(t, res.Hop, `rstpool.MustHop("mysql").WithIdle(`)
}

// Redis's timeout is server-wide: the test sets it and puts it back. It
// also raises hz, how often Redis checks its clients, from 10 to 100 a
// second (also put back): at 10, Redis closes an idle client up to 100 ms
// after its timeout, 5 % of the test's 2 s, which left too little room
// for the rest on a busy machine.
func TestProbeDSNRedis(t *testing.T) {
	t.Parallel()
	needService(t, "Redis", redisAddr, "redis-server --daemonize yes --bind 127.0.0.1")
	admin := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { admin.Close() })
	redisSet(t, admin, "timeout", fmt.Sprint(int(dsnTimeout.Seconds())))
	redisSet(t, admin, "hz", "100")
	res, _ := probeDSN(t, "redis://"+redisAddr+"/0")
	requireFound(t, res, dsnTimeout)
	require.Equal(t, "redis", res.Proto)
	require.Equal(t, "FIN", res.End)
	require.Equal(t, "timeout = 2 (2s) (server-wide)", res.Declared)
	require.EqualValues(t, 2000, res.DeclaredMs)
	require.Empty(t, res.Farewell, "Redis closes without a word")
}

// redisSet sets a server-wide parameter of Redis until the test ends.
func redisSet(t *testing.T, admin *redis.Client, name, value string) {
	t.Helper()
	ctx := context.Background()
	old, err := admin.ConfigGet(ctx, name).Result()
	require.NoError(t, err)
	require.NoError(t, admin.ConfigSet(ctx, name, value).Err())
	t.Cleanup(func() { require.NoError(t, admin.ConfigSet(ctx, name, old[name]).Err()) })
}

// PgBouncer's client_idle_timeout, on a PgBouncer of the test's own in
// transaction mode in front of the local PostgreSQL. (In session mode
// PgBouncer 1.18 does not apply client_idle_timeout to a client linked to
// a server connection, which in session mode is every client once it has
// run a statement.)
func TestProbeDSNPgBouncer(t *testing.T) {
	t.Parallel()
	needService(t, "PostgreSQL", pgAddr, "pg_ctlcluster 15 main start")
	addr := startPgBouncer(t, dsnTimeout)
	res, _ := probeDSN(t, "postgres://postgres:secret@"+addr+"/test?sslmode=disable")
	requireFound(t, res, dsnTimeout)
	require.Equal(t, "FIN", res.End)
	require.Equal(t, "FATAL 08P01: client_idle_timeout", res.Farewell)
	require.Equal(t, "idle_session_timeout = 0 (off) for this session", res.Declared, "the server behind PgBouncer")
	require.Contains(t, res.Hop, `rstpool.MustHop("pgbouncer-tx").WithIdle(`)
}

// startPgBouncer runs a PgBouncer on a free loopback port in front of the
// local PostgreSQL and stops it when the test ends. PgBouncer refuses to
// run as root: as root, it runs with -u postgres (it drops to that user).
func startPgBouncer(t *testing.T, clientIdle time.Duration) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("pgbouncer not installed: %v", err)
		}
		t.Skip("pgbouncer not installed (apt-get install pgbouncer; .ci/run installs it), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead")
	}
	var args []string
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root and no user postgres for pgbouncer -u")
		}
		args = append(args, "-u", "postgres")
	}
	port := freePort(t)
	// PgBouncer reads its files after it has dropped to postgres: a
	// directory anyone can read, which t.TempDir is not.
	dir, err := os.MkdirTemp("", "rstpool-pgbouncer-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	ini := fmt.Sprintf(`[databases]
test = host=127.0.0.1 port=5432 dbname=test
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
client_idle_timeout = %d
`, port, filepath.Join(dir, "users.txt"), int(clientIdle.Seconds()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"postgres" ""`+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644))
	cmd := exec.Command(bin, append(args, filepath.Join(dir, "pgbouncer.ini"))...)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer did not listen on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a child process's output.
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
	return strings.TrimSpace(s.b.String())
}

// A bad --dsn command line is refused before any connection, as every
// usage error is.
func TestProbeDSNUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"probe", "--dsn", "postgres://a@127.0.0.1/x", "127.0.0.1:5432"}, `unexpected argument "127.0.0.1:5432" with --dsn`},
		{[]string{"probe", "--dsn", "postgres://a@127.0.0.1/x", "--proto", "tcp"}, "--proto with --dsn"},
		{[]string{"probe", "--dsn", "ftp://a:s3cret@127.0.0.1/x"}, "--dsn \"ftp://a:xxxxx@127.0.0.1/x\": want one of postgres://"},
		{[]string{"probe", "--dsn", "mysql://a:s3cret@127.0.0.1/x?timeout=zz"}, "--dsn mysql://a:xxxxx@127.0.0.1/x?timeout=zz: "},
		{[]string{"probe", "--dsn", "redis://127.0.0.1:6379", "--min", "0s"}, "--min 0s: must be positive"},
	} {
		st, out, errOut := runCmd(tc.args...)
		require.Equal(t, exitUsage, st, "%v: %s", tc.args, errOut)
		require.Empty(t, out)
		require.True(t, strings.HasPrefix(errOut, "rstpool probe: "+tc.want), "%v:\n%s", tc.args, errOut)
		require.NotContains(t, errOut, "s3cret")
	}
}

// A login that fails stops the probe before its rounds, with the driver's
// reason and without the password.
func TestProbeDSNLoginFails(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	st, out, errOut := runCmd("probe", "--dsn", "redis://:s3cret@"+closed)
	require.Equal(t, exitFindings, st)
	require.Empty(t, out)
	require.Contains(t, errOut, "rstpool probe: login to redis "+closed+": ")
	require.Contains(t, errOut, "connection refused")

	needService(t, "MariaDB", mysqlAddr, "start-stop-daemon --start --background --exec /usr/sbin/mariadbd")
	st, _, errOut = runCmd("probe", "--dsn", "mysql://rstpool_nosuch:s3cret@"+mysqlAddr+"/test")
	require.Equal(t, exitFindings, st)
	require.Contains(t, errOut, "rstpool probe: login to mysql "+mysqlAddr+": Error 1045")
	require.NotContains(t, errOut, "s3cret")
}

// The notes compare the bracket with the server's own setting and with
// the other sessions.
func TestProbeDSNNotes(t *testing.T) {
	ended := diag.ProbeResult{End: diag.EndFIN, AliveAt: 1990 * time.Millisecond, DeadAt: 2010 * time.Millisecond, Max: 3 * time.Second}
	require.Empty(t, declaredNote(ended, dbprobe.Setting{}), "the server did not say")
	require.Empty(t, declaredNote(ended, dbprobe.Setting{Text: "x", Timeout: 2 * time.Second}), "they agree")
	require.Contains(t, declaredNote(ended, dbprobe.Setting{Text: "x", Timeout: time.Minute}), "before the server's own timeout")
	require.Contains(t, declaredNote(ended, dbprobe.Setting{Text: "x"}), "declares no idle timeout")
	none := diag.ProbeResult{End: diag.EndNone, AliveAt: 3 * time.Second, Max: 3 * time.Second}
	require.Equal(t, "the server's own timeout is above --max 3s: run with --max 8h48m0s to measure it",
		declaredNote(none, dbprobe.Setting{Text: "x", Timeout: 8 * time.Hour}))
	require.Empty(t, declaredNote(none, dbprobe.Setting{Text: "x"}))

	require.False(t, swept(ended))
	ended.Outlived = 2040 * time.Millisecond
	require.False(t, swept(ended), "within the probe's own spread")
	ended.Outlived = 2200 * time.Millisecond
	require.True(t, swept(ended))
}

// Ctrl-C prints the bracket measured so far, and exits 1.
func TestProbeDSNInterrupted(t *testing.T) {
	needService(t, "PostgreSQL", pgAddr, "pg_ctlcluster 15 main start")
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run([]string{"probe", "--dsn", "postgres://postgres@" + pgAddr + "/test?sslmode=disable",
			"--min", "200ms", "--max", "1m"}, &out, &errOut)
	}()
	require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "round 1") }, 10*time.Second, 10*time.Millisecond,
		"a progress line once the sessions idle")
	time.Sleep(300 * time.Millisecond)
	self, err := os.FindProcess(os.Getpid())
	require.NoError(t, err)
	require.NoError(t, self.Signal(os.Interrupt))
	select {
	case st := <-done:
		require.Equal(t, exitFindings, st)
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-C did not end the probe")
	}
	require.Contains(t, out.String(), "interrupted after ")
	require.Contains(t, out.String(), "no end seen up to ")
}
