package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A toxiproxy is a running toxiproxy-server (Shopify's fault proxy), driven
// through its HTTP API with plain net/http.
type toxiproxy struct {
	api    string // http://host:port of the API
	client *http.Client
}

// toxiproxyPath finds toxiproxy-server on PATH or in $(go env GOPATH)/bin,
// where .ci/run installs it.
func toxiproxyPath() (string, error) {
	if p, err := exec.LookPath("toxiproxy-server"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "toxiproxy-server")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("toxiproxy-server not on PATH nor in %s: %w", filepath.Dir(p), err)
	}
	return p, nil
}

// startToxiproxy runs toxiproxy-server on a free loopback port until the
// test ends. It skips when the program is not installed, unless
// RSTPOOL_REQUIRE_SERVICES=1.
func startToxiproxy(t *testing.T) *toxiproxy {
	path, err := toxiproxyPath()
	if err != nil {
		unreachable(t, "toxiproxy-server (go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0, renamed; .ci/run installs it)", err)
	}
	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "-host", host, "-port", port)
	cmd.Stdout, cmd.Stderr = nil, nil // it logs every connection
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tp := &toxiproxy{api: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	require.Eventually(t, func() bool {
		resp, err := tp.client.Get(tp.api + "/version")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "toxiproxy-server did not answer on %s", addr)
	return tp
}

// call sends one API request with a JSON body (nil: none) and checks that
// the status is 2xx.
func (tp *toxiproxy) call(method, path string, body any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, tp.api+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tp.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		return fmt.Errorf("toxiproxy %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg.Bytes()))
	}
	return nil
}

// proxy creates a proxy named name from a free loopback port to upstream
// and returns its listen address.
func (tp *toxiproxy) proxy(t *testing.T, name, upstream string) string {
	listen := freePort(t)
	require.NoError(t, tp.call(http.MethodPost, "/proxies",
		map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}))
	return listen
}

// resetPeer adds a reset_peer toxic to both directions of the proxy: every
// connection, open or new, is reset (SO_LINGER 0) as soon as it carries a
// byte, a new one right after toxiproxy accepted it.
func (tp *toxiproxy) resetPeer(name string) error {
	for _, stream := range []string{"upstream", "downstream"} {
		if err := tp.call(http.MethodPost, "/proxies/"+name+"/toxics", map[string]any{
			"name": "rst-" + stream, "type": "reset_peer", "stream": stream, "toxicity": 1.0,
			"attributes": map[string]any{"timeout": 0},
		}); err != nil {
			return err
		}
	}
	return nil
}

// clearResetPeer removes the toxics resetPeer added.
func (tp *toxiproxy) clearResetPeer(name string) error {
	for _, stream := range []string{"upstream", "downstream"} {
		if err := tp.call(http.MethodDelete, "/proxies/"+name+"/toxics/rst-"+stream, nil); err != nil {
			return err
		}
	}
	return nil
}

// blip resets every connection of the proxy that carries a byte for d.
func (tp *toxiproxy) blip(name string, d time.Duration) error {
	if err := tp.resetPeer(name); err != nil {
		return err
	}
	time.Sleep(d)
	return tp.clearResetPeer(name)
}

// enable opens (true) or closes (false) the proxy's listener: a closed one
// refuses connects; closing also ends the proxy's open connections.
func (tp *toxiproxy) enable(name string, on bool) error {
	return tp.call(http.MethodPost, "/proxies/"+name, map[string]any{"enabled": on})
}
