package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// A change is an exported name of the last release that is gone or no
// longer what it was. Additions are not changes: they break nobody.
type change struct {
	Name     string
	Old, New string // New is empty when the name was removed
}

func (c change) String() string {
	if c.New == "" {
		return fmt.Sprintf("removed  %s  (was: %s)", c.Name, c.Old)
	}
	return fmt.Sprintf("changed  %s  (was: %s; now: %s)", c.Name, c.Old, c.New)
}

// diff compares an API with the release's and returns the names removed or
// changed, in the release's order, and how many were added.
func diff(release, now []entry) (changes []change, added int) {
	cur := map[string]string{}
	for _, e := range now {
		cur[e.Name] = e.Desc
	}
	old := map[string]bool{}
	for _, e := range release {
		old[e.Name] = true
		switch d, ok := cur[e.Name]; {
		case !ok:
			changes = append(changes, change{Name: e.Name, Old: e.Desc})
		case d != e.Desc:
			changes = append(changes, change{Name: e.Name, Old: e.Desc, New: d})
		}
	}
	for _, e := range now {
		if !old[e.Name] {
			added++
		}
	}
	return changes, added
}

// The headings of CHANGELOG.md the check reads: the Unreleased section
// and, in it, the list of incompatible changes.
var (
	unreleasedHeading   = regexp.MustCompile(`(?i)^##\s+\[?unreleased\]?`)
	incompatibleHeading = regexp.MustCompile(`(?i)^###\s+changed\s+\(incompatible\)`)
	codeSpan            = regexp.MustCompile("`([^`]+)`")
	dottedName          = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*`)
)

// incompatibleNames returns the names written in code spans (`Pool.Stat`,
// `rstpgx.Retry()`) in the "Changed (incompatible)" subsection of the
// Unreleased section, HTML comments left out, and whether that subsection
// exists.
func incompatibleNames(changelog io.Reader) (map[string]bool, bool, error) {
	names := map[string]bool{}
	var inUnreleased, inList, found, inComment bool
	sc := bufio.NewScanner(changelog)
	for sc.Scan() {
		var line string
		line, inComment = uncomment(sc.Text(), inComment)
		switch {
		case strings.HasPrefix(line, "## "):
			inUnreleased, inList = unreleasedHeading.MatchString(line), false
			continue
		case strings.HasPrefix(line, "### "):
			inList = inUnreleased && incompatibleHeading.MatchString(line)
			found = found || inList
			continue
		}
		if !inList {
			continue
		}
		for _, span := range codeSpan.FindAllStringSubmatch(line, -1) {
			for _, n := range dottedName.FindAllString(span[1], -1) {
				names[n] = true
			}
		}
	}
	return names, found, sc.Err()
}

// uncomment removes the HTML comments from a line; inComment says whether
// the line starts inside one, and the result whether the next one does.
func uncomment(line string, inComment bool) (string, bool) {
	var b strings.Builder
	for line != "" {
		if inComment {
			_, rest, ok := strings.Cut(line, "-->")
			if !ok {
				return b.String(), true
			}
			line, inComment = rest, false
			continue
		}
		before, rest, ok := strings.Cut(line, "<!--")
		b.WriteString(before)
		if !ok {
			break
		}
		line, inComment = rest, true
	}
	return b.String(), inComment
}

// named reports whether the changelog names the change: by its qualified
// name (rstpgx.Retry, rstpool.Pool.Stat), in the root package also without
// "rstpool." (Pool.Stat), or by the type it belongs to (PoolStat covers
// PoolStat.ResetRetried).
func named(name, rootPkg string, names map[string]bool) bool {
	for n := name; strings.Contains(n, "."); n = n[:strings.LastIndex(n, ".")] {
		if names[n] {
			return true
		}
		if short, ok := strings.CutPrefix(n, rootPkg+"."); ok && names[short] {
			return true
		}
	}
	return false
}

// readEntries reads an API file: "name<TAB>description" lines, # comments.
func readEntries(b []byte) ([]entry, error) {
	var out []entry
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, desc, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("line %d: want name<TAB>description: %q", i+1, line)
		}
		out = append(out, entry{name, desc})
	}
	return out, nil
}

// writeEntries writes an API file under a comment header.
func writeEntries(header string, es []entry) []byte {
	var b bytes.Buffer
	for _, h := range strings.Split(strings.TrimSpace(header), "\n") {
		fmt.Fprintf(&b, "# %s\n", h)
	}
	for _, e := range es {
		fmt.Fprintf(&b, "%s\t%s\n", e.Name, e.Desc)
	}
	return b.Bytes()
}
