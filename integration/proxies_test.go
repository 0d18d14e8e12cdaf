package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// The proxies users run in front of their servers, started on loopback:
// nginx and HAProxy with a 1 s keep-alive towards the client. A client
// whose connections sit idle about a second races their close; rstpool
// learns the limit below that second and surfaces no more errors than
// stock for any method.

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startProxyProcess runs a third-party proxy in the foreground until the
// test ends, and waits until it listens on addr. It skips when the program
// is not installed, unless RSTPOOL_REQUIRE_SERVICES=1.
func startProxyProcess(t *testing.T, program string, addr string, args ...string) {
	path, err := exec.LookPath(program)
	if err != nil {
		unreachable(t, program+" (apt-get install nginx-light haproxy; .ci/run installs them)", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "%s did not listen on %s", program, addr)
}

func startNginx(t *testing.T, upstream string) string {
	return startNginxUpstreamIdle(t, upstream, time.Minute)
}

// startNginxUpstreamIdle is startNginx with the idle timeout of nginx's own
// connections to the upstream (its default is a minute).
func startNginxUpstreamIdle(t *testing.T, upstream string, upIdle time.Duration) string {
	dir, addr := t.TempDir(), freePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream app { server %[2]s; keepalive 16; keepalive_timeout %[4]dms; }
	server {
		listen %[3]s;
		keepalive_timeout 1s;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Request-Id $http_x_request_id;
		}
	}
}
`, dir, upstream, addr, upIdle.Milliseconds())
	path := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	startProxyProcess(t, "nginx", addr, "-c", path, "-p", dir)
	return addr
}

func startHAProxy(t *testing.T, upstream string) string {
	dir, addr := t.TempDir(), freePort(t)
	conf := fmt.Sprintf(`global
	maxconn 256
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	timeout http-keep-alive 1s
frontend in
	bind %s
	default_backend app
backend app
	http-reuse always
	server app %s
`, addr, upstream)
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	startProxyProcess(t, "haproxy", addr, "-db", "-f", path)
	return addr
}

// proxiedCounts counts, at the server behind the proxy, the arrivals of
// each request id.
type proxiedCounts struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *proxiedCounts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.seen[r.Header.Get("X-Request-Id")]++
	c.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// keepAliveRace sends rounds of requests, one per worker and method, with
// idle gaps around the proxy's 1 s keep-alive, and counts errors per method.
func keepAliveRace(t *testing.T, rt http.RoundTripper, url string, rounds int) (map[string]int, int) {
	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	methods := []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost}
	errs := map[string]int{}
	var mu sync.Mutex
	for round := range rounds {
		time.Sleep(time.Second + time.Duration(round%5)*40*time.Millisecond)
		var wg sync.WaitGroup
		for i, m := range methods {
			wg.Go(func() {
				req, _ := http.NewRequest(m, url, strings.NewReader("payload"))
				req.Header.Set("X-Request-Id", fmt.Sprintf("%s-%d-%d", m, round, i))
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					mu.Lock()
					errs[m]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errs, len(methods) * rounds
}

func TestThirdPartyProxiesKeepAliveRace(t *testing.T) {
	for _, proxy := range []struct {
		name  string
		start func(*testing.T, string) string
	}{{"nginx", startNginx}, {"haproxy", startHAProxy}} {
		t.Run(proxy.name, func(t *testing.T) {
			t.Parallel() // the two legs share nothing but the server: half the time
			results := map[string]map[string]int{}
			var ours *rstpool.Transport
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, mode := range []string{"stock", "rstpool"} {
				counts := &proxiedCounts{seen: map[string]int{}}
				srv := httptest.NewServer(counts)
				t.Cleanup(srv.Close)
				addr := proxy.start(t, srv.Listener.Addr().String())
				base := http.DefaultTransport.(*http.Transport).Clone()
				var rt http.RoundTripper = base
				if mode == "rstpool" {
					ours = &rstpool.Transport{Base: base}
					rt = ours
				}
				wg.Go(func() {
					errs, sent := keepAliveRace(t, rt, "http://"+addr+"/", 10)
					mu.Lock()
					defer mu.Unlock()
					results[mode] = errs
					counts.mu.Lock()
					defer counts.mu.Unlock()
					for id, n := range counts.seen {
						if n < 2 || !strings.HasPrefix(id, "POST") {
							continue
						}
						// Seen once in the stock leg at load 15 on 2
						// cores, with no error at the client: net/http
						// repeats a POST only when none of it was
						// written, so the proxy likely repeated it on a
						// cached upstream connection. Logged: the test
						// holds rstpool's leg to it, not the stock setup.
						require.NotEqual(t, "rstpool", mode, "%s: POST %s ran %d times", mode, id, n)
						t.Logf("%s %s: POST %s ran %d times", proxy.name, mode, id, n)
					}
					t.Logf("%s %s: errors per method %v of %d requests", proxy.name, mode, errs, sent)
				})
			}
			wg.Wait()
			t.Logf("%s rstpool learned %v", proxy.name, ours.Stats().LearnedIdle)
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				require.Zero(t, results["rstpool"][m], "%s: idempotent %s failed through rstpool", proxy.name, m)
			}
			for m, n := range results["rstpool"] {
				require.LessOrEqual(t, n, results["stock"][m], "%s: rstpool worse than stock for %s", proxy.name, m)
			}
		})
	}
}
