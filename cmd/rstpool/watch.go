package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("watch", command{Summary: "capture resets on a port and tell the peer's own from forged ones by TTL (Linux, root)", Run: runWatch})
}

const watchAbout = `Captures the TCP segments of a port on every interface (Linux AF_PACKET with a
BPF filter; needs root) and judges each RST received: "peer" when it arrives
with the same IP TTL (IPv6 hop limit) as that address's other segments,
"forged" when the TTL differs (a load balancer, firewall or NAT in between
sent it), "unknown" before any other segment from that address was seen.
Prints a line per RST while running and a summary at the end (Ctrl-C or
--duration).

--json prints only the summary, as one object: "segments", "rsts", "peer",
"forged", "unknown" (counts) and "events" (each "time", RFC 3339, "from" and
"to", address:port, "ttl", "peer_ttl", 0 when none was seen, and "verdict":
peer, forged or unknown).

Exit status 1 when a forged RST was seen or the capture failed, 2 for a
usage error.`

func runWatch(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("watch", "--port N [--duration D] [--json]", watchAbout, stderr)
	var port portFlag
	fs.Var(&port, "port", "TCP `port` to watch (required; 1 to 65535)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	asJSON := fs.Bool("json", false, "print only the summary, as one JSON object (see above)")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	switch {
	case fs.NArg() > 0:
		return usageError(stderr, "watch", "unexpected argument %q", fs.Arg(0))
	case !port.given():
		return usageError(stderr, "watch", "--port: required, the TCP port to watch (1 to 65535)")
	case port.check("port") != nil:
		return usageError(stderr, "watch", "%v", port.check("port"))
	case *duration < 0:
		return usageError(stderr, "watch", "--duration %s: must not be negative (0: until Ctrl-C)", *duration)
	}
	if err := diag.HostSupported(); err != nil {
		return fail(stderr, "watch", err)
	}
	capture, err := diag.OpenCapture(port.port())
	if err != nil {
		return fail(stderr, "watch", err)
	}
	defer capture.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var onRST func(diag.RSTEvent)
	if !*asJSON {
		fmt.Fprintf(stdout, "watching TCP port %d (Ctrl-C to stop)\n", port.port())
		onRST = func(e diag.RSTEvent) { fmt.Fprintln(stdout, e) }
	}
	sum, err := capture.Run(ctx, onRST)
	if err != nil {
		return fail(stderr, "watch", err)
	}
	if *asJSON {
		if st := writeJSON(stdout, sum); st != exitOK {
			return st
		}
	} else {
		fmt.Fprintf(stdout, "%s\n", sum)
	}
	if sum.Forged > 0 {
		return exitFindings
	}
	return exitOK
}
