package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("doctor", command{Summary: "inspect this host: keepalive sysctls, listen overflows, reset counters, conntrack, sockets", Run: runDoctor})
}

const doctorAbout = `Reads this host's TCP settings and counters (Linux /proc): keepalive and FIN
sysctls, listen queue overflows, the kernel's reset counters since boot,
conntrack fill, the socket summary and, with --port, the accept queue of the
listeners on that port. Each finding has a severity (ok, info, warn, crit)
and one line of advice.

--json prints one object: "findings" (each "severity", "check", "message",
"advice" when there is one) and "host": the sysctls read (tcp_keepalive_time_ms,
tcp_keepalive_intvl_ms, tcp_keepalive_probes, tcp_fin_timeout_ms,
tcp_abort_on_overflow, tcp_max_orphans, tcp_max_tw_buckets, somaxconn,
nf_conntrack_count, nf_conntrack_max, nf_conntrack_tcp_timeout_established_ms;
one this host lacks is left out), "counters" (each "name", as
"TcpExt.ListenOverflows", and "value"), "tcp_sockets" (the TCP line of
/proc/net/sockstat by name), "listeners" (each "addr", "accept_queue",
"backlog"; with --port) and "missing" (files not found). Durations are whole
milliseconds.

Exit status 1 when a finding is warn or crit or the host cannot be read, 2
for a usage error.`

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", "[--port N] [--json]", doctorAbout, stderr)
	var port portFlag
	fs.Var(&port, "port", "also inspect the listeners on this TCP `port` (1 to 65535)")
	asJSON := fs.Bool("json", false, "print the findings and the host state as one JSON object (see above)")
	root := fs.String("root", "/", "directory holding proc/ (for inspecting a copy of another host's /proc)")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	switch {
	case fs.NArg() > 0:
		return usageError(stderr, "doctor", "unexpected argument %q", fs.Arg(0))
	case port.check("port") != nil:
		return usageError(stderr, "doctor", "%v", port.check("port"))
	}
	if fi, err := os.Stat(filepath.Join(*root, "proc")); *root != "/" && (err != nil || !fi.IsDir()) {
		return usageError(stderr, "doctor", "--root %s: no proc directory in it", *root)
	}
	if err := diag.HostSupported(); err != nil && *root == "/" {
		return fail(stderr, "doctor", err)
	}
	opts := diag.DoctorOptions{Root: *root, Port: port.port()}
	if *root == "/" {
		opts.Backlogs = diag.ListenBacklogs
	}
	findings, host, err := diag.Doctor(opts)
	if err != nil {
		return fail(stderr, "doctor", err)
	}
	if *asJSON {
		if st := writeJSON(stdout, doctorJSON{findings, host.Report()}); st != exitOK {
			return st
		}
		return findingsStatus(findings)
	}
	fmt.Fprint(stdout, diag.FormatFindings(findings))
	return findingsStatus(findings)
}

// doctorJSON is the doctor's --json output.
type doctorJSON struct {
	Findings []diag.Finding  `json:"findings"`
	Host     diag.HostReport `json:"host"`
}
