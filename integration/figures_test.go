package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// The figures of issue 16's closing note: third-party faults, 1,000
// requests per method through stock net/http and rstpool's Transport side
// by side, errors per method. They take a minute or two each, so they run
// only with RSTPOOL_FIGURES=1:
//
//	RSTPOOL_FIGURES=1 go test -run TestFigures -v ./integration/

const figuresPerMethod = 1000

func figuresOnly(t *testing.T) {
	if os.Getenv("RSTPOOL_FIGURES") != "1" {
		t.Skip("the third-party figures take a minute or two each: run them with RSTPOOL_FIGURES=1 (-v prints the tables)")
	}
}

// A figuresRun is what one client surfaced, per method.
type figuresRun struct {
	Sent   map[string]int `json:"sent"`
	Errors map[string]int `json:"errors"`
	Sample map[string]string
}

// figuresLoad sends figuresPerMethod requests of each method through rt,
// from workers goroutines that pause a random gap in [lo, hi) before each
// request; ids are "prefix-METHOD-n".
func figuresLoad(rt http.RoundTripper, url, prefix string, workers int, lo, hi time.Duration, seed uint64) *figuresRun {
	var reqs []string
	for _, m := range httpMethods {
		for range figuresPerMethod {
			reqs = append(reqs, m)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	run := &figuresRun{Sent: map[string]int{}, Errors: map[string]int{}, Sample: map[string]string{}}
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			wr := rand.New(rand.NewPCG(seed, uint64(w)+2))
			for i := w; i < len(reqs); i += workers {
				time.Sleep(lo + time.Duration(wr.Int64N(int64(hi-lo))))
				m := reqs[i]
				var body io.Reader
				if m == http.MethodPut || m == http.MethodPost {
					body = strings.NewReader("payload")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req, _ := http.NewRequestWithContext(ctx, m, url, body)
				req.Header.Set("X-Request-Id", fmt.Sprintf("%s-%s-%d", prefix, m, i))
				err := roundTrip(client, req)
				cancel()
				mu.Lock()
				run.Sent[m]++
				if err != nil {
					run.Errors[m]++
					if run.Sample[m] == "" {
						run.Sample[m] = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return run
}

// figuresTable prints the runs as a table and asserts rstpool surfaced no
// more errors than stock for any method.
func figuresTable(t *testing.T, title string, stock, ours *figuresRun) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n| method | stock errors | rstpool errors |\n|---|---|---|\n", title)
	for _, m := range httpMethods {
		fmt.Fprintf(&b, "| %s | %d/%d | %d/%d |\n", m, stock.Errors[m], stock.Sent[m], ours.Errors[m], ours.Sent[m])
	}
	for _, m := range httpMethods {
		if e := ours.Sample[m]; e != "" {
			fmt.Fprintf(&b, "  first rstpool %s error: %s\n", m, e)
		}
	}
	t.Log(b.String())
	for _, m := range httpMethods {
		require.Equal(t, figuresPerMethod, ours.Sent[m], "requests sent")
		require.LessOrEqual(t, ours.Errors[m], stock.Errors[m], "%s: rstpool surfaced more %s errors than stock", title, m)
		if m != http.MethodPost {
			require.Zero(t, ours.Errors[m], "%s: rstpool surfaced errors of idempotent %s requests", title, m)
		}
	}
}

// checkNoDuplicatePOST fails when a POST of the run reached the server
// more than once.
func checkNoDuplicatePOST(t *testing.T, c *proxiedCounts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.seen {
		require.False(t, n > 1 && strings.Contains(id, "-POST-"), "POST %s ran %d times", id, n)
	}
}

// TestFiguresToxiproxyBlips: toxiproxy in front of nginx (keepalive_timeout
// 1 s) in front of a Go server; every 1 to 2 s, toxiproxy's reset_peer
// resets every connection that carries a byte for 100 ms. Both clients go
// through the same toxiproxy at once, 8 workers each with gaps of 20–60 ms.
func TestFiguresToxiproxyBlips(t *testing.T) {
	figuresOnly(t)
	counts := &proxiedCounts{seen: map[string]int{}}
	srv := httptest.NewServer(counts)
	t.Cleanup(srv.Close)
	tp := startToxiproxy(t)
	url := "http://" + tp.proxy(t, "figures", startNginx(t, srv.Listener.Addr().String())) + "/"

	stop := make(chan struct{})
	var blips sync.WaitGroup
	blips.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second + time.Duration(rng.Int64N(int64(time.Second)))):
			}
			if err := tp.blip("figures", 100*time.Millisecond); err != nil {
				t.Errorf("blip: %v", err)
				return
			}
		}
	})
	runs := make([]*figuresRun, 2)
	var wg sync.WaitGroup
	for side := range 2 {
		var rt http.RoundTripper = soakBaseDefault()
		if side == oursSide {
			rt = &rstpool.Transport{Base: soakBaseDefault()}
		}
		wg.Go(func() {
			runs[side] = figuresLoad(rt, url, sideNames[side], 8, 20*time.Millisecond, 60*time.Millisecond, uint64(side)+7)
		})
	}
	wg.Wait()
	close(stop)
	blips.Wait()
	checkNoDuplicatePOST(t, counts)
	figuresTable(t, "toxiproxy reset_peer blips of 100 ms every 1–2 s, nginx behind it, 1,000 requests per method", runs[stockSide], runs[oursSide])
}

// soakBaseDefault is net/http's DefaultTransport with room for the
// workers' connections.
func soakBaseDefault() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return tr
}
