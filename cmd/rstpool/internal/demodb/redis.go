package demodb

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

// redisDB is Redis through go-redis: stock, and as README.md and CLIENTS.md
// recommend (the Dialer as its Dialer, ConnMaxIdleTime from d.Limits(),
// DialerRetries 1). Both keep go-redis's own retries (MaxRetries 3: every
// command that failed on its connection, writes included), and the demo
// adds none.
var redisDB = demo.Database{
	Name: "redis", Addr: "127.0.0.1:6379", Client: "go-redis v9",
	Start:  "redis-server --daemonize yes --bind 127.0.0.1, or docker run -d -p 6379:6379 redis",
	Recipe: `CLIENTS.md "go-redis"`,
	Open:   openRedis,
	Retry:  demo.Once,
}

// quietRedis silences go-redis's global logger once: it would log the
// resets the demo counts.
var quietRedis sync.Once

type redisStore struct {
	c     *redis.Client
	setup string
}

func openRedis(addr string, d *rstpool.Dialer, size int) (demo.Store, error) {
	quietRedis.Do(func() { redis.SetLogger(nopLogger{}) })
	opt := &redis.Options{Addr: addr, PoolSize: size, DialTimeout: 5 * time.Second}
	s := &redisStore{setup: "go-redis, defaults (MaxRetries 3)"}
	if d != nil {
		idle, _, err := d.Limits()
		if err != nil {
			return nil, err
		}
		opt.Dialer, opt.ConnMaxIdleTime, opt.DialerRetries = d.DialContext, idle, 1
		s.setup = "go-redis with Dialer d.DialContext, ConnMaxIdleTime from d.Limits(), DialerRetries 1 (MaxRetries 3)"
	}
	s.c = redis.NewClient(opt)
	return s, nil
}

func (s *redisStore) About() string       { return s.setup }
func (s *redisStore) Idle() time.Duration { return s.c.Options().ConnMaxIdleTime }
func (s *redisStore) Close()              { _ = s.c.Close() }

func (s *redisStore) Prepare(ctx context.Context) error { return s.c.Ping(ctx).Err() }

// redisKey is the hash that holds a tag's counted writes, a field per id.
func redisKey(tag string) string { return "rstpool-demo:" + tag }

func (s *redisStore) Read(ctx context.Context, tag string, id int) error {
	err := s.c.HGet(ctx, redisKey(tag), strconv.Itoa(id)).Err()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

func (s *redisStore) Write(ctx context.Context, tag string, id int) error {
	return s.c.HIncrBy(ctx, redisKey(tag), strconv.Itoa(id), 1).Err()
}

func (s *redisStore) Applied(ctx context.Context, tag string) (map[int]int, error) {
	m, err := s.c.HGetAll(ctx, redisKey(tag)).Result()
	if err != nil {
		return nil, err
	}
	out := map[int]int{}
	for k, v := range m {
		id, err1 := strconv.Atoi(k)
		n, err2 := strconv.Atoi(v)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, nil
}

func (s *redisStore) Forget(ctx context.Context, tag string) error {
	return s.c.Del(ctx, redisKey(tag)).Err()
}

// nopLogger discards go-redis's log lines.
type nopLogger struct{}

func (nopLogger) Printf(context.Context, string, ...any) {}
