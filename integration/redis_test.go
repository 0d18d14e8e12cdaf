package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// redisAddr is the Redis server: RSTPOOL_REDIS_ADDR, else the local one.
func redisAddr() string { return envOr("RSTPOOL_REDIS_ADDR", "127.0.0.1:6379") }

func redisAdmin(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr()})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unreachable(t, "Redis at "+redisAddr(), err)
	}
	return c
}

// redisTarget opens a go-redis client, stock (d nil) or dialing through d
// with ConnMaxIdleTime from its chain. The write is INCR on a counter of
// the scenario's own: a duplicated INCR shows in the count.
func redisTarget(t *testing.T, admin *redis.Client, name string, d *rstpool.Dialer) target {
	counter := fmt.Sprintf("rstpool:%s:%d", name, os.Getpid())
	require.NoError(t, admin.Del(context.Background(), counter).Err())
	t.Cleanup(func() { admin.Del(context.Background(), counter) })
	opt := &redis.Options{Addr: redisAddr(), PoolSize: 8, ClientName: counter}
	if d != nil {
		opt.Dialer = d.DialContext
		opt.ConnMaxIdleTime = d.Chain.ClientIdleTimeout()
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return target{
		read: func(ctx context.Context) error {
			if err := c.Get(ctx, counter).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			return nil
		},
		write: func(ctx context.Context, _ int64) error { return c.Incr(ctx, counter).Err() },
		rows: func(ctx context.Context) (int64, error) {
			n, err := admin.Get(ctx, counter).Int64()
			if errors.Is(err, redis.Nil) {
				return 0, nil
			}
			return n, err
		},
	}
}

// redisKillClients kills the clients named name.
func redisKillClients(t *testing.T, admin *redis.Client, name string) {
	list, err := admin.ClientList(context.Background()).Result()
	require.NoError(t, err)
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				_ = admin.Do(context.Background(), "client", "kill", "id", id).Err()
			}
		}
	}
}

func TestRedisTimeout(t *testing.T) {
	admin := redisAdmin(t)
	old, err := admin.ConfigGet(context.Background(), "timeout").Result()
	require.NoError(t, err)
	require.NoError(t, admin.ConfigSet(context.Background(), "timeout", "1").Err())
	t.Cleanup(func() { admin.ConfigSet(context.Background(), "timeout", old["timeout"]) })
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "redis timeout", IdleTimeout: time.Second}}}
	sideBySide(t, "Redis timeout 1s, go-redis", false, func(t *testing.T, ours bool) *result {
		tg := redisTarget(t, admin, "timeout", dialerIf(ours, d))
		r := burst(tg, 8)
		r.add(gaps(tg, 8, 3, 1100*time.Millisecond, 1500*time.Millisecond))
		finish(t, tg, r)
		return r
	})
}

func TestRedisClientsKilledWhileIdle(t *testing.T) {
	admin := redisAdmin(t)
	sideBySide(t, "Redis CLIENT KILL all idle, go-redis", false, func(t *testing.T, ours bool) *result {
		tg := redisTarget(t, admin, "kill", dialerIf(ours, &rstpool.Dialer{}))
		name := fmt.Sprintf("rstpool:kill:%d", os.Getpid())
		total := &result{}
		for range 3 {
			total.add(burst(tg, 8))
			redisKillClients(t, admin, name)
			time.Sleep(100 * time.Millisecond)
			total.add(burst(tg, 8))
		}
		finish(t, tg, total)
		return total
	})
}
