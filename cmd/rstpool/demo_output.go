package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

// A reportFile is the file --json-out names, checked before the run: the
// report goes to a temporary file beside it, renamed over it at the end.
type reportFile struct {
	name string
	tmp  *os.File
}

func createReportFile(name string) (*reportFile, error) {
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return nil, errors.New("is a directory")
	}
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("cannot create a file in %s: %w", dir, pe.Err)
	}
	if err != nil {
		return nil, err
	}
	return &reportFile{name: name, tmp: tmp}, nil
}

// commit writes the report and puts the file in place.
func (r *reportFile) commit(rep *demo.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if _, err := r.tmp.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := r.tmp.Close(); err != nil {
		return err
	}
	return os.Rename(r.tmp.Name(), r.name)
}

// discard removes the temporary file when commit did not rename it.
func (r *reportFile) discard() {
	_ = r.tmp.Close()
	_ = os.Remove(r.tmp.Name())
}

// progress shows a run's progress on stderr: one line rewritten in place on
// a terminal, a line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	shown bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, every: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) show(pr demo.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "demo %5.1fs", pr.Elapsed.Seconds())
	for _, c := range pr.Clients {
		fmt.Fprintf(&b, "  %s %d/%d (%d errors)", c.Name, c.Done, c.Total, c.Errors)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", b.String())
	} else {
		fmt.Fprintln(p.w, b.String())
	}
	p.shown = true
}

// end finishes the in-place line.
func (p *progress) end() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
