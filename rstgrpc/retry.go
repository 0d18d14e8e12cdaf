package rstgrpc

import (
	"context"
	"strings"

	"github.com/rstpool/rstpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryMethods returns a unary client interceptor that runs a call to
// one of the named methods a second time when the first attempt failed
// with codes.Unavailable: its connection failed under it (a reset, a
// restart) or none could be made. That is rstpool's retry rule for work
// that is safe to repeat, and only the caller knows which methods are
// (grpc-go ignores a proto's idempotency_level): name only those. A call
// that may have changed something and failed in flight must not run twice;
// DialOptions prevents the idle-connection failures of every call, and
// grpc-go itself retries, for every method, a call that never reached the
// server.
//
// A method is named "package.Service/Method", or "package.Service" for all
// of its methods (a leading "/" is accepted, as in the full method names
// interceptors see). The second attempt follows a jittered pause of up to
// rstpool.RetryBackoff and only runs while ctx is not done; there is never
// a third. Install it with grpc.WithChainUnaryInterceptor.
//
// Unlike a service config retryPolicy, which grpc-go gives up once the
// response headers have arrived, it also repeats a call whose connection
// was reset after the server began to answer. Do not give the same methods
// a retryPolicy as well: the attempts would multiply.
func RetryMethods(methods ...string) grpc.UnaryClientInterceptor {
	names := make([]string, len(methods))
	for i, m := range methods {
		names[i] = "/" + strings.TrimPrefix(m, "/")
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unavailable || !named(names, method) || !pause(ctx) {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// named reports whether method is one of names or belongs to a service
// among them.
func named(names []string, method string) bool {
	for _, n := range names {
		if method == n || strings.HasPrefix(method, n+"/") {
			return true
		}
	}
	return false
}

// retryPause is rstpool's pause before a retry: between 60 % of
// rstpool.RetryBackoff and all of it, so that calls a reset failed
// together do not come back together, and past a 100 ms blip.
var retryPause = rstpool.Backoff{Base: rstpool.RetryBackoff, Jitter: 0.4}

// pause waits out retryPause; it reports false when ctx ended first.
func pause(ctx context.Context) bool { return retryPause.Sleep(ctx, 0) }

// RetryIdempotent is RetryMethods under its first name.
//
// Deprecated: use RetryMethods; rstpool.RetryIdempotent is a RetryReason,
// not an interceptor.
func RetryIdempotent(methods ...string) grpc.UnaryClientInterceptor { return RetryMethods(methods...) }
