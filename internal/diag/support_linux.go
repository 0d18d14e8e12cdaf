package diag

// HostSupported reports whether the host diagnostics (doctor, watch) can
// run on this operating system: nil on Linux.
func HostSupported() error { return nil }
