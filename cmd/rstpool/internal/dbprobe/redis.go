package dbprobe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
)

// turnMargin is how long before the server's clock turns a second a Redis
// session's PING should arrive, beyond the round trip's own spread: late
// enough that the session's idle time counts from near the end of a
// second, early enough not to cross it. A PING that crosses costs that
// session a second; the other sessions still measure the shortest.
const turnMargin = 10 * time.Millisecond

// quietRedis silences go-redis's global logger once: it would print the
// ends the probe measures.
var quietRedis sync.Once

type nopLogger struct{}

func (nopLogger) Printf(context.Context, string, ...any) {}

// redisSession is a go-redis client of one connection that it never
// replaces: its own retries are off, and a second dial fails.
type redisSession struct {
	rdb *redis.Client
	mu  sync.Mutex
	tc  *rstpool.Conn
	nc  net.Conn // what go-redis reads: tc, or TLS over it
}

// connectRedis returns a client that dials once through d.
func (t *Target) connectRedis(d *rstpool.Dialer) *redisSession {
	quietRedis.Do(func() { redis.SetLogger(nopLogger{}) })
	opt := *t.rd
	s := &redisSession{}
	tlsCfg := opt.TLSConfig
	opt.TLSConfig = nil
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return s.dial(ctx, d, network, addr, tlsCfg)
	}
	opt.PoolSize, opt.MinIdleConns, opt.MaxIdleConns = 1, 0, 1
	opt.MaxRetries, opt.ConnMaxIdleTime, opt.ConnMaxLifetime = -1, -1, 0
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	s.rdb = redis.NewClient(&opt)
	return s
}

func (s *redisSession) dial(ctx context.Context, d *rstpool.Dialer, network, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc != nil {
		return nil, errRedialed
	}
	c, err := dialFunc(d)(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.tc, _ = c.(*rstpool.Conn)
	s.nc = c
	if tlsCfg != nil {
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		s.nc = tc
	}
	return s.nc, nil
}

// openRedis logs in (a first PING), reads the server's clock (TIME) and
// sends a second PING so that it arrives turnMargin before the server's
// clock turns a second. Redis counts idle time in whole seconds and closes
// a client once the seconds elapsed exceed timeout, so a session is closed
// after between timeout and timeout + 1 s of idle: a PING at the end of a
// second makes the probe measure the shortest, the one a pool must stay
// below.
func (t *Target) openRedis(ctx context.Context, d *rstpool.Dialer) (diag.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, t.login())
	defer cancel()
	s := t.connectRedis(d)
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, t.loginError(err)
	}
	sent := time.Now()
	server, err := s.rdb.Time(ctx).Result()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("TIME on %s: %w", t.Addr, err)
	}
	rtt := time.Since(sent)
	select {
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	case <-time.After(time.Until(untilTurn(sent.Add(rtt/2), server, rtt))):
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("PING on %s: %w", t.Addr, err)
	}
	return s, nil
}

// untilTurn returns when to send a command so that it reaches the server
// turnMargin plus a round trip before its clock turns a second, given that
// the server's clock read server at local time local, and a round trip
// takes rtt.
func untilTurn(local, server time.Time, rtt time.Duration) time.Time {
	toTurn := server.Truncate(time.Second).Add(time.Second).Sub(server)
	at := local.Add(toTurn - turnMargin - rtt - rtt/2)
	for at.Before(time.Now()) {
		at = at.Add(time.Second)
	}
	return at
}

func (s *redisSession) Tracked() *rstpool.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tc
}

func (s *redisSession) Exchange(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Farewell reads an error line the server wrote before closing; Redis's
// timeout closes without one.
func (s *redisSession) Farewell(ctx context.Context) string {
	s.mu.Lock()
	nc := s.nc
	s.mu.Unlock()
	if nc == nil || nc.SetReadDeadline(deadlineOf(ctx)) != nil {
		return ""
	}
	line, _ := bufio.NewReader(nc).ReadString('\n')
	if !strings.HasPrefix(line, "-") {
		return ""
	}
	return strings.TrimSpace(line[1:])
}

func (s *redisSession) Close() error { return s.rdb.Close() }

// declaredRedis asks for the server's timeout (CONFIG GET, which an ACL
// may forbid: then the server does not say).
func (t *Target) declaredRedis(ctx context.Context, d *rstpool.Dialer) (Setting, error) {
	s := t.connectRedis(d)
	defer s.Close()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return Setting{}, t.loginError(err)
	}
	m, err := s.rdb.ConfigGet(ctx, "timeout").Result()
	if err != nil || m["timeout"] == "" {
		return Setting{}, nil
	}
	return secondsSetting("timeout", m["timeout"], " (server-wide)"), nil
}
