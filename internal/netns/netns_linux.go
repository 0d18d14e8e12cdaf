// Package netns creates throwaway Linux network namespaces for tests: a
// namespace with lo up, veth links between namespaces, `ip` and `nft`
// commands run inside, and code run with the calling thread switched in
// (sockets it creates stay in that namespace). Everything is deleted when
// the test ends. It needs root, `ip` and `nft`; tests skip with the
// reason Available gives.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Available reports why namespaces cannot be made here: not root, or no
// `ip` or `nft` command. Nil means they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, veth and nftables)")
	}
	for _, cmd := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("netns: no %q command: %w", cmd, err)
		}
	}
	return nil
}

// SkipUnlessAvailable skips the test with Available's reason.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err.Error())
	}
}

// NS is a network namespace that lives as long as the test that made it.
type NS struct {
	Name string
	t    testing.TB
	fd   int
}

var seq atomic.Int64

// New creates a namespace with a unique name and lo up, and deletes it
// (with every link inside) when the test ends. It fails the test on error.
func New(t testing.TB) *NS {
	t.Helper()
	name := fmt.Sprintf("rstpool-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("netns: ip netns add %s: %v: %s", name, err, out)
	}
	n := &NS{Name: name, t: t, fd: -1}
	t.Cleanup(n.delete)
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("netns: open %s: %v", name, err)
	}
	n.fd = fd
	n.IP("link set lo up")
	return n
}

func (n *NS) delete() {
	if n.fd >= 0 {
		unix.Close(n.fd)
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		n.t.Errorf("netns: ip netns del %s: %v: %s", n.Name, err, out)
	}
}

// Do runs fn on the calling goroutine with its OS thread switched into the
// namespace, and switches back after. Sockets fn creates (net.Listen,
// net.Dial) belong to the namespace for their whole life.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open own namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", n.Name, err)
	}
	defer func() {
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked, and the runtime ends the thread with the goroutine
	}()
	return fn()
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(name string, args ...string) ([]byte, error) {
	full := append([]string{"netns", "exec", n.Name, name}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// IP runs `ip ARGS` inside the namespace (args split on spaces) and fails
// the test on error.
func (n *NS) IP(args string) {
	n.t.Helper()
	if _, err := n.Exec("ip", strings.Fields(args)...); err != nil {
		n.t.Fatal(err)
	}
}

// Nft runs an nft script inside the namespace, one command a line (for
// example "add table inet t"), and fails the test on error.
func (n *NS) Nft(script string) {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("netns %s: nft %q: %v: %s", n.Name, script, err, out)
	}
}

// Sysctl sets a sysctl of the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (n *NS) Sysctl(key, value string) {
	n.t.Helper()
	if _, err := n.Exec("sysctl", "-q", "-w", key+"="+value); err != nil {
		n.t.Fatal(err)
	}
}

// Link joins two namespaces with a veth pair and gives each end an address
// in CIDR form ("10.77.1.1/24"); both ends are up. It returns the names of
// the ends (in a, in b).
func Link(a *NS, aAddr string, b *NS, bAddr string) (string, string) {
	a.t.Helper()
	id := seq.Add(1)
	ea, eb := fmt.Sprintf("rv%da", id), fmt.Sprintf("rv%db", id)
	a.IP(fmt.Sprintf("link add %s type veth peer name %s netns %s", ea, eb, b.Name))
	a.IP(fmt.Sprintf("addr add %s dev %s", aAddr, ea))
	a.IP("link set " + ea + " up")
	b.IP(fmt.Sprintf("addr add %s dev %s", bAddr, eb))
	b.IP("link set " + eb + " up")
	return ea, eb
}
