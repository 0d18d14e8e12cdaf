package dbprobe

import (
	"bytes"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ dsn, kind, addr, shown string }{
		{"postgres://app:s3cret@db.example:6432/shop?sslmode=disable", Postgres, "db.example:6432",
			"postgres://app:xxxxx@db.example:6432/shop?sslmode=disable"},
		{"postgresql://app@127.0.0.1/shop", Postgres, "127.0.0.1:5432", "postgresql://app@127.0.0.1/shop"},
		{"mysql://app:s3cret@127.0.0.1/shop?wait_timeout=60", MySQL, "127.0.0.1:3306",
			"mysql://app:xxxxx@127.0.0.1/shop?wait_timeout=60"},
		{"app:s3cret@tcp(127.0.0.1:3307)/shop", MySQL, "127.0.0.1:3307", "app:xxxxx@tcp(127.0.0.1:3307)/shop"},
		{"redis://default:s3cret@127.0.0.1:6380/2", Redis, "127.0.0.1:6380", "redis://default:xxxxx@127.0.0.1:6380/2"},
		{"rediss://127.0.0.1:6380", Redis, "127.0.0.1:6380", "rediss://127.0.0.1:6380"},
		{"redis://:s3cret@127.0.0.1:6379", Redis, "127.0.0.1:6379", "redis://:xxxxx@127.0.0.1:6379"},
	} {
		tg, err := Parse(tc.dsn)
		require.NoError(t, err, tc.dsn)
		require.Equal(t, tc.kind, tg.Kind, tc.dsn)
		require.Equal(t, tc.addr, tg.Addr, tc.dsn)
		require.Equal(t, tc.shown, tg.URL)
		require.Equal(t, tc.kind, tg.Sessions().Name)
	}
	tg, err := Parse("mysql://app:p%40ss:w@127.0.0.1/shop")
	require.NoError(t, err)
	require.Equal(t, "p@ss:w", tg.my.Passwd, "the URL's escapes are undone")
	require.Equal(t, "app", tg.my.User)
	tg, err = Parse("mysql://app@127.0.0.1:3306/shop?wait_timeout=2&tls=false")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"wait_timeout": "2"}, tg.my.Params, "a session variable, set after login")
	tg, err = Parse("rediss://127.0.0.1:6380")
	require.NoError(t, err)
	require.NotNil(t, tg.rd.TLSConfig)

	for _, tc := range []struct{ dsn, want string }{
		{"http://example.com", "want one of postgres://"},
		{"127.0.0.1:5432", "want one of"},
		{"postgres://app:s3cret@127.0.0.1:notaport/x", "postgres://app:xxxxx@127.0.0.1:notaport/x: "},
		{"mysql://app:s3cret@127.0.0.1/shop?timeout=zz", "mysql://app:xxxxx@127.0.0.1/shop?timeout=zz: "},
		{"redis://app:s3cret@127.0.0.1:6379/notadb", "redis://app:xxxxx@"},
	} {
		_, err := Parse(tc.dsn)
		require.ErrorContains(t, err, tc.want, tc.dsn)
		require.NotContains(t, err.Error(), "s3cret", tc.dsn)
	}
}

func TestGoDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour:               "time.Hour",
		8 * time.Hour:           "8 * time.Hour",
		90 * time.Second:        "90 * time.Second",
		2 * time.Second:         "2 * time.Second",
		1500 * time.Millisecond: "1500 * time.Millisecond",
		1:                       "time.Duration(1)",
	} {
		require.Equal(t, want, GoDuration(d))
	}
	require.Equal(t, 1900*time.Millisecond, roundDown(1999*time.Millisecond))
	require.Equal(t, 61*time.Second, roundDown(61900*time.Millisecond))
	require.Equal(t, 8*time.Hour, roundDown(8*time.Hour+59*time.Second))
}

func TestAdvise(t *testing.T) {
	res := diag.ProbeResult{End: diag.EndFIN, AliveAt: 2010 * time.Millisecond, DeadAt: 2040 * time.Millisecond, Estimate: 2025 * time.Millisecond}
	pg, _ := Parse("postgres://app@127.0.0.1/shop")
	_, ok := pg.Advise(diag.ProbeResult{End: diag.EndNone, AliveAt: time.Hour})
	require.False(t, ok, "no end, nothing to declare")

	a, ok := pg.Advise(res)
	require.True(t, ok)
	require.Equal(t, rstpool.Hop{Name: "postgres", IdleTimeout: 2 * time.Second}, a.Hop)
	require.Equal(t, `rstpool.Hop{Name: "postgres", IdleTimeout: 2 * time.Second}`, a.Declare)
	require.Equal(t, rstpool.Chain{a.Hop}.ClientIdleTimeout(), a.Idle)
	require.Less(t, a.Idle, res.AliveAt)
	require.Contains(t, a.Settings[0], "rstpgx.Configure(cfg, d) sets cfg.MaxConnIdleTime to "+a.Idle.String())
	require.Contains(t, a.Settings[1], "db.SetConnMaxIdleTime("+GoDuration(a.Idle)+")")

	bouncer := res
	bouncer.Farewell = "FATAL 08P01: client_idle_timeout"
	a, _ = pg.Advise(bouncer)
	require.Equal(t, rstpool.MustHop("pgbouncer-tx").WithIdle(2*time.Second), a.Hop)

	silent := res
	silent.End = diag.EndSilent
	a, _ = pg.Advise(silent)
	require.True(t, a.Hop.Middlebox, "a silent drop is a middlebox's")

	my, _ := Parse("mysql://root@127.0.0.1/test")
	a, _ = my.Advise(res)
	require.Equal(t, rstpool.MustHop("mysql").WithIdle(2*time.Second), a.Hop)
	require.Contains(t, a.Settings[0], "rstpool.WrapConnector(conn, d)")

	rd, _ := Parse("redis://127.0.0.1:6379")
	a, _ = rd.Advise(res)
	require.Contains(t, a.Settings[0], "ConnMaxIdleTime: "+GoDuration(a.Idle))
}

// The ERR packet MySQL 8.0.24 and later send before closing an idle
// session.
func TestMySQLFarewell(t *testing.T) {
	msg := "The client was disconnected by the server because of inactivity."
	payload := append([]byte{0xff, 0xbf, 0x0f, '#'}, []byte("HY000"+msg)...)
	pkt := append([]byte{byte(len(payload)), 0, 0, 0}, payload...)
	require.Equal(t, "ERROR 4031 (HY000): "+msg, mysqlError(bytes.NewReader(pkt)))
	require.Empty(t, mysqlError(bytes.NewReader(nil)), "closed without a word")
	require.Empty(t, mysqlError(bytes.NewReader([]byte{1, 0, 0, 0, 0})), "an OK packet is no farewell")
}

// The PING is sent so that it reaches the server turnMargin before its
// clock turns a second.
func TestUntilTurn(t *testing.T) {
	now := time.Now()
	server := time.Date(2026, 1, 1, 0, 0, 7, 400e6, time.UTC)
	rtt := 2 * time.Millisecond
	at := untilTurn(now, server, rtt)
	arrives := server.Add(at.Sub(now) + rtt/2)
	require.Equal(t, 8*time.Second, arrives.Add(turnMargin+rtt).Round(time.Millisecond).Sub(server.Truncate(time.Minute)))

	// Too close to the turn: the next one.
	late := untilTurn(now, time.Date(2026, 1, 1, 0, 0, 7, 999e6, time.UTC), rtt)
	require.True(t, late.After(now))
	require.Less(t, late.Sub(now), time.Second)
}

func TestSettings(t *testing.T) {
	for v, want := range map[string]time.Duration{"0": 0, "500ms": 500 * time.Millisecond, "2s": 2 * time.Second,
		"10min": 10 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour, "250": 250 * time.Millisecond} {
		got, ok := pgDuration(v)
		require.True(t, ok, v)
		require.Equal(t, want, got, v)
	}
	_, ok := pgDuration("2 fortnights")
	require.False(t, ok)
	require.Equal(t, Setting{Text: "wait_timeout = 28800 (8h0m0s) for this session", Timeout: 8 * time.Hour},
		secondsSetting("wait_timeout", "28800", " for this session"))
	require.Equal(t, Setting{Text: "timeout = 0 (off)"}, secondsSetting("timeout", "0", ""))
}
