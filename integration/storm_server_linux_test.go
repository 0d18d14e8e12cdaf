package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A stormServer is an HTTP server on a fixed loopback port that can
// restart: its listener and every connection closed, then a new listener
// on the same port after a pause. It records when it accepted each
// connection.
type stormServer struct {
	addr    string // fixed by the first listen
	backlog int    // listen(2) backlog; zero: Go's (somaxconn)
	warm    int    // warm-up requests held until that many arrived

	mu       sync.Mutex
	srv      *http.Server
	accepted []time.Time
	warming  int
	warmed   chan struct{} // closed when warm warm-up requests arrived
}

func newStormServer(backlog, warm int) (*stormServer, error) {
	s := &stormServer{addr: "127.0.0.1:0", backlog: backlog, warm: warm, warmed: make(chan struct{})}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen opens the listener and serves it; the first call picks the port.
func (s *stormServer) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	if s.backlog > 0 {
		if err := relisten(ln, s.backlog); err != nil {
			ln.Close()
			return err
		}
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(&timedListener{Listener: ln, s: s})
	return nil
}

// serve answers a warm-up request once every warm-up request arrived (or
// after 10 s), so that each holds a connection of its own, and any other
// after 20 ms, so that concurrent requests of one client need connections
// of their own.
func (s *stormServer) serve(w http.ResponseWriter, r *http.Request) {
	switch q := r.URL.Query(); {
	case q.Has("warm"):
		s.mu.Lock()
		if s.warming++; s.warming == s.warm {
			close(s.warmed)
		}
		s.mu.Unlock()
		select {
		case <-s.warmed:
		case <-time.After(10 * time.Second):
		}
	case q.Has("hold"):
		time.Sleep(20 * time.Millisecond)
	}
	w.Write([]byte("ok"))
}

// relisten calls listen(2) again on ln's socket: Linux then takes the new
// backlog.
func relisten(ln net.Listener, backlog int) error {
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	return lerr
}

// restart closes the listener and every connection, waits down, and
// listens again on the same port; it returns when the new listener is up.
func (s *stormServer) restart(down time.Duration) (reopened time.Time, err error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if err := srv.Close(); err != nil {
		return time.Time{}, err
	}
	time.Sleep(down)
	for range 50 { // the port may still be held for a moment
		if err = s.listen(); err == nil {
			return time.Now(), nil
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("listen again on %s: %w", s.addr, err)
}

// close closes the server. s.mu is not held meanwhile: Close waits for
// Serve to return, and Serve's Accept takes s.mu to note a connection.
func (s *stormServer) close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Close()
}

// acceptedSince returns the times of the connections accepted at or after
// t, in order.
func (s *stormServer) acceptedSince(t time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, a := range s.accepted {
		if !a.Before(t) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

type timedListener struct {
	net.Listener
	s *stormServer
}

func (l *timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		now := time.Now()
		l.s.mu.Lock()
		l.s.accepted = append(l.s.accepted, now)
		l.s.mu.Unlock()
	}
	return c, err
}

// drops returns how many connects the current listener dropped (its
// accept queue was full, or its queue of half-open connects), as ss(8)
// reads them from the kernel: the listener's own share of the
// namespace's ListenDrops.
func (s *stormServer) drops() (int64, error) {
	_, port, _ := strings.Cut(s.addr, ":")
	out, err := exec.Command("ss", "-Hltnm", "sport = :"+port).Output()
	if err != nil {
		return 0, fmt.Errorf("ss: %w", err)
	}
	m := ssDrops.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ss: no drops for the listener on %s in %q", s.addr, out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

// ssDrops finds the drops in ss -m's skmem field.
var ssDrops = regexp.MustCompile(`skmem:\([^)]*,d(\d+)\)`)

// skipWithoutSS skips a storm where ss(8), which reads a listener's
// drops, is missing.
func skipWithoutSS(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skipf("the restart storm reads the listen queue's drops with ss (iproute2): %v", err)
	}
}

// stormServerEnv, set to "backlog warm", makes TestStormServer serve.
const stormServerEnv = "RSTPOOL_STORM_SERVER"

// TestStormServer is a stormServer in a process of its own, run by
// stormRemote, so that the clients' work does not slow its accepts: it
// prints "listening ADDR", then answers one line per command line on its
// standard input until it ends. "restart NS" restarts with NS
// nanoseconds down and answers "restart UNIXNANO", when it listened
// again; "accepted UNIXNANO" answers the times of the connections
// accepted since, in nanoseconds; "drops" the drops of the listener.
// Alone it skips.
func TestStormServer(t *testing.T) {
	var backlog, warm int
	if _, err := fmt.Sscan(os.Getenv(stormServerEnv), &backlog, &warm); err != nil {
		t.Skip("the server of the restart storm, run by it in a process of its own")
	}
	s, err := newStormServer(backlog, warm)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	fmt.Println("listening", s.addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		n, _ := strconv.ParseInt(arg, 10, 64)
		switch cmd {
		case "restart":
			reopened, err := s.restart(time.Duration(n))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("restart", reopened.UnixNano())
		case "accepted":
			var b strings.Builder
			b.WriteString("accepted")
			for _, a := range s.acceptedSince(time.Unix(0, n)) {
				fmt.Fprintf(&b, " %d", a.UnixNano())
			}
			fmt.Println(b.String())
		case "drops":
			d, err := s.drops()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("drops", d)
		}
	}
}

// A stormRemote drives a TestStormServer process.
type stormRemote struct {
	addr string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

// startStormServer starts a stormServer in a process of its own, with
// warm warm-up requests.
func startStormServer(backlog, warm int) (*stormRemote, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStormServer$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d", stormServerEnv, backlog, warm))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &stormRemote{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	r.out.Buffer(nil, 1<<20)
	if r.addr, err = r.answer("listening"); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// answer reads the server's next line whose first word is word, and
// returns the rest of it.
func (r *stormRemote) answer(word string) (string, error) {
	for r.out.Scan() {
		if f, rest, _ := strings.Cut(r.out.Text(), " "); f == word {
			return rest, nil
		}
	}
	return "", fmt.Errorf("storm server: no %q line: %v", word, r.out.Err())
}

// ask sends a command line and returns the rest of its answer.
func (r *stormRemote) ask(word string, args ...any) (string, error) {
	if _, err := fmt.Fprintln(r.in, append([]any{word}, args...)...); err != nil {
		return "", err
	}
	return r.answer(word)
}

// restart restarts the server with down between the close and the new
// listener; it returns when the new listener is up, with the moment it
// was.
func (r *stormRemote) restart(down time.Duration) (time.Time, error) {
	line, err := r.ask("restart", int64(down))
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(line, 10, 64)
	return time.Unix(0, n), err
}

// acceptedSince returns the times of the connections the server accepted
// at or after t, in order.
func (r *stormRemote) acceptedSince(t time.Time) ([]time.Time, error) {
	line, err := r.ask("accepted", t.UnixNano())
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, f := range strings.Fields(line) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, time.Unix(0, n))
	}
	return out, nil
}

// drops returns the drops of the server's current listener.
func (r *stormRemote) drops() (int64, error) {
	line, err := r.ask("drops")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(line, 10, 64)
}

// close ends the server process and waits for it.
func (r *stormRemote) close() {
	r.in.Close()
	r.cmd.Wait()
}
