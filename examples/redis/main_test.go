package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out, "127.0.0.1:6379")
	if err != nil && os.Getenv("RSTPOOL_REQUIRE_SERVICES") != "1" {
		t.Skipf("server unreachable (%v): start it, or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", err)
	}
	require.NoError(t, err)
	require.Regexp(t, `^PONG, idle limit 3m0s\n$`, out.String())
}
