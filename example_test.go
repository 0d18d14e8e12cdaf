package rstpool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/rstpool/rstpool"
)

// A Dialer with a declared chain keeps its idle connections below every
// hop's idle timeout and checks them before reuse.
func ExampleDialer() {
	d := &rstpool.Dialer{
		Chain: rstpool.Chain{rstpool.MustHop("aws-nlb"), rstpool.MustHop("nginx")},
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()

	conn, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println("idle limit:", d.Chain.ClientIdleTimeout())
	fmt.Println("keepalive idle:", d.Chain.KeepAliveIdle())
	// Output:
	// idle limit: 56.25s
	// keepalive idle: 30s
}

// Classify names a failure through every layer of wrapping, and the
// underlying errno stays reachable with errors.Is.
func ExampleClassify() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	d := &rstpool.Dialer{RefusedRetry: -1}
	_, err := d.DialContext(context.Background(), "tcp", addr)
	err = fmt.Errorf("loading the profile: %w", err)

	fmt.Println(rstpool.Classify(err))
	fmt.Println(errors.Is(err, syscall.ECONNREFUSED))
	var ce *rstpool.ConnError
	if errors.As(err, &ce) {
		fmt.Println(ce.Cause().Advice())
	}
	// Output:
	// refused
	// true
	// Back off and retry within a short budget; if it persists, check the address.
}

// Check names the hop on the client's own connection that its idle timeout
// outlives, and the window in which its reused connections will be reset.
// Node's keep-alive governs the load balancer's connections, not the
// client's: the client's connection ends at the ALB.
func ExampleChain_Check() {
	chain := rstpool.Chain{rstpool.MustHop("aws-nat"), rstpool.MustHop("aws-alb"), rstpool.MustHop("node")}
	fmt.Println(chain.Check(90 * time.Second))
	fmt.Println(chain.ClientIdleTimeout(), chain.Check(chain.ClientIdleTimeout()))
	// Output:
	// client 1m30s ≥ aws-alb 1m0s: reuse between 1m0s and 1m30s will reset
	// 45s <nil>
}
