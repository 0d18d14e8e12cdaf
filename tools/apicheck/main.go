// Command apicheck compares the public API of the library modules of the
// repository with that of the last release, stored in api/VERSION/ (one
// file per module, a line per exported name with its kind and type), and
// fails on a name removed or changed that the Unreleased section of
// CHANGELOG.md does not list under "Changed (incompatible)". Additions
// pass. Run from the repository's root:
//
//	go run ./tools/apicheck                      # check against the newest api/v*
//	go run ./tools/apicheck -write api/v0.2.0    # record a release's API
//
// Exit status: 0 compatible (or every change named), 1 an unnamed
// incompatible change, 2 a usage or load error.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/semver"
)

// A module is a library module whose API is checked.
type module struct {
	Dir  string // relative to the repository's root
	File string // its file in api/VERSION/
}

// libraries are the modules users import; cmd/rstpool, examples and
// integration promise no API.
var libraries = []module{
	{".", "rstpool.txt"},
	{"rstpgx", "rstpgx.txt"},
	{"rstgrpc", "rstgrpc.txt"},
	{"rstprom", "rstprom.txt"},
	{"rstotel", "rstotel.txt"},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("apicheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "the repository's root")
	against := fs.String("against", "", "the release's API directory (default: the newest api/vX.Y.Z)")
	changelog := fs.String("changelog", "", "the changelog (default: ROOT/CHANGELOG.md)")
	write := fs.String("write", "", "record the API in `DIR` instead of checking it")
	note := fs.String("note", "", "a line for the header of the files -write records")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if *write != "" {
		err = record(*root, *write, *note, libraries)
	} else {
		if *changelog == "" {
			*changelog = filepath.Join(*root, "CHANGELOG.md")
		}
		var ok bool
		ok, err = check(*root, *against, *changelog, libraries, stdout)
		if err == nil && !ok {
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "apicheck: %v\n", err)
		return 2
	}
	return 0
}

// record writes the API of every module of mods into dir.
func record(root, dir, note string, mods []module) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, m := range mods {
		es, err := loadModule(filepath.Join(root, m.Dir))
		if err != nil {
			return err
		}
		header := "The public API of " + moduleName(m) + " (directory " + m.Dir + ") at " + filepath.Base(dir) + ", written by tools/apicheck:\n" +
			"one line per exported name: qualified name, a tab, its kind and type.\n" + note
		if err := os.WriteFile(filepath.Join(dir, m.File), writeEntries(header, es), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// check compares every module of mods with the release in against, prints
// each change, and reports whether CHANGELOG names all of them.
func check(root, against, changelogPath string, mods []module, w io.Writer) (bool, error) {
	if against == "" {
		var err error
		if against, err = newestRelease(filepath.Join(root, "api")); err != nil {
			return false, err
		}
	}
	if _, err := os.Stat(against); err != nil {
		return false, err
	}
	cl, err := os.ReadFile(changelogPath)
	if err != nil {
		return false, err
	}
	names, hasList, err := incompatibleNames(bytes.NewReader(cl))
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "API compared with %s:\n", filepath.Base(against))
	unnamed := 0
	for _, m := range mods {
		n, err := checkModule(root, against, m, rootPackage(mods), names, w)
		if err != nil {
			return false, err
		}
		unnamed += n
	}
	if unnamed == 0 {
		return true, nil
	}
	fmt.Fprintf(w, "\n%d incompatible change(s) not named in %s: list each under \"## Unreleased\", \"### Changed (incompatible)\", by its name in backquotes (`Pool.Stat`, `rstpgx.Retry`; a type's name covers its fields and methods), or keep the old name.\n",
		unnamed, filepath.Base(changelogPath))
	if !hasList {
		fmt.Fprintf(w, "%s has no \"### Changed (incompatible)\" under \"## Unreleased\".\n", filepath.Base(changelogPath))
	}
	return false, nil
}

// checkModule prints the changes of one module and returns how many
// CHANGELOG does not name.
func checkModule(root, against string, m module, rootPkg string, names map[string]bool, w io.Writer) (int, error) {
	b, err := os.ReadFile(filepath.Join(against, m.File))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "  %-8s not in the release: nothing to compare\n", m.Dir)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	release, err := readEntries(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.File, err)
	}
	now, err := loadModule(filepath.Join(root, m.Dir))
	if err != nil {
		return 0, err
	}
	changes, added := diff(release, now)
	fmt.Fprintf(w, "  %-8s %d names: %d removed or changed, %d added\n", moduleName(m), len(now), len(changes), added)
	unnamed := 0
	for _, c := range changes {
		verdict := "named in CHANGELOG"
		if !named(c.Name, rootPkg, names) {
			verdict, unnamed = "NOT NAMED in CHANGELOG", unnamed+1
		}
		fmt.Fprintf(w, "    %s: %s\n", verdict, c)
	}
	return unnamed, nil
}

func moduleName(m module) string { return strings.TrimSuffix(m.File, ".txt") }

// rootPackage is the name of the root module's package ("rstpool"), which
// CHANGELOG may leave out.
func rootPackage(mods []module) string {
	for _, m := range mods {
		if m.Dir == "." {
			return moduleName(m)
		}
	}
	return ""
}

// newestRelease returns the directory of the newest release under dir.
func newestRelease(dir string) (string, error) {
	ds, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	newest := ""
	for _, d := range ds {
		if d.IsDir() && semver.IsValid(d.Name()) && (newest == "" || semver.Compare(d.Name(), newest) > 0) {
			newest = d.Name()
		}
	}
	if newest == "" {
		return "", fmt.Errorf("no release (vX.Y.Z) in %s", dir)
	}
	return filepath.Join(dir, newest), nil
}
