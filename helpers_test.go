package rstpool

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// drop forgets the facts of k.
func (t *destTable) drop(k destKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, k)
	t.n.Store(int32(len(t.m)))
}

// forgetDestination drops what the process learned about addr when the
// test ends, so that a port the kernel hands out again starts clean.
func forgetDestination(t *testing.T, addr string) {
	t.Cleanup(func() { destinations.drop(destKey{"tcp", addr}) })
}

// closedPort returns a loopback address nothing listens on (a port the
// kernel handed out and took back), whose facts are forgotten when the
// test ends.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	forgetDestination(t, addr)
	return addr
}

// age moves every time the learner kept back by d.
func (l *learner) age(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ev {
		e.okAt -= int64(d)
		if e.noiseAt != 0 {
			e.noiseAt -= int64(d)
		}
		e.explored -= int64(d)
		for i := range e.pending {
			e.pending[i].at -= int64(d)
		}
	}
}
