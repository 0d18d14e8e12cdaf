package main

import (
	"fmt"
	"io"

	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("doctor", command{Summary: "inspect this host: keepalive sysctls, listen overflows, reset counters, conntrack, sockets", Run: runDoctor})
}

const doctorAbout = `Reads this host's TCP settings and counters (Linux /proc): keepalive and FIN
sysctls, listen queue overflows, the kernel's reset counters since boot,
conntrack fill, the socket summary and, with --port, the accept queue of the
listeners on that port. Each finding has a severity (ok, info, warn, crit)
and one line of advice. Exit status 1 when a finding is warn or crit.`

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", "[--port N] [--json]", doctorAbout, stderr)
	port := fs.Uint("port", 0, "also inspect the listeners on this TCP `port`")
	asJSON := fs.Bool("json", false, "print the findings and the raw host state as JSON")
	root := fs.String("root", "/", "directory holding proc/ (for inspecting a copy of another host's /proc)")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if *port > 65535 || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if err := diag.HostSupported(); err != nil && *root == "/" {
		return fail(stderr, "doctor", err)
	}
	opts := diag.DoctorOptions{Root: *root, Port: uint16(*port)}
	if *root == "/" {
		opts.Backlogs = diag.ListenBacklogs
	}
	findings, host, err := diag.Doctor(opts)
	if err != nil {
		return fail(stderr, "doctor", err)
	}
	if *asJSON {
		if writeJSON(stdout, struct {
			Findings []diag.Finding  `json:"findings"`
			Host     *diag.HostState `json:"host"`
		}{findings, host}) != exitOK {
			return exitFindings
		}
		return findingsStatus(findings)
	}
	fmt.Fprint(stdout, diag.FormatFindings(findings))
	return findingsStatus(findings)
}
