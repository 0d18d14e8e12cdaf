package demo

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Headers the workload sets and the server reads.
const (
	headerRequestID      = "X-Request-Id"
	headerIdempotencyKey = "Idempotency-Key"
)

// A Server is the in-process HTTP server of the demo, on a loopback port. It
// counts the complete requests it receives per request id, so that a
// non-idempotent request that arrived twice is caught.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	mu   sync.Mutex
	seen map[string]int  // arrivals per request id
	post map[string]bool // ids of POSTs; true when they carried a key
}

// StartServer starts a Server on 127.0.0.1 with a port chosen by the kernel.
// idle is its keep-alive idle timeout (http.Server.IdleTimeout).
func StartServer(idle time.Duration) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: server: %w", err)
	}
	s := &Server{ln: ln, done: make(chan struct{}), seen: map[string]int{}, post: map[string]bool{}}
	s.srv = &http.Server{
		Handler:           s,
		IdleTimeout:       idle,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // cut requests are expected here
	}
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer close(s.done)
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return
	}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close closes the server and its connections and waits for it to stop.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// ServeHTTP reads the whole request, counts it and answers with a small body.
// A request whose body did not arrive in full is not counted: the handler
// never acts on it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return
	}
	id := r.Header.Get(headerRequestID)
	key := r.Header.Get(headerIdempotencyKey)
	s.mu.Lock()
	s.seen[id]++
	n := s.seen[id]
	if r.Method == http.MethodPost {
		s.post[id] = key != ""
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"id":%q,"method":%q,"arrival":%d,"replayed":%t}`+"\n", id, r.Method, n, key != "" && n > 1)
}

// Tally returns what the server received so far.
func (s *Server) Tally() ServerTally {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := ServerTally{Distinct: len(s.seen)}
	for id, n := range s.seen {
		t.Arrivals += n
		keyed, isPost := s.post[id]
		switch {
		case n < 2 || !isPost:
		case keyed:
			t.Replays++
		default:
			t.Duplicates++
		}
	}
	return t
}
