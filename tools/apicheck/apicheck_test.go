package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The release of the fixture module: a function, a type with a field and
// a method, an interface others implement, one they cannot, a constant.
const releaseSrc = `package lib

import "context"

func Old(ctx context.Context, n int) error { return nil }

type T struct{ Size int }

func (t *T) Get(key string) (string, bool) { return "", false }

type Handler interface{ Handle(ctx context.Context) error }

type Sealed interface {
	Name() string
	sealed()
}

const Limit = 3
`

// fixtures lay out a repository with one module, example.com/lib (its
// package "lib" stands where the root package does), its release's API
// recorded in api/v0.1.0, and the source replaced by src.
func fixture(t *testing.T, src, changelog string) (root string, mods []module) {
	t.Helper()
	root = t.TempDir()
	mods = []module{{".", "lib.txt"}}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/lib\n\ngo 1.26\n")
	write("lib.go", releaseSrc)
	if err := record(root, filepath.Join(root, "api", "v0.1.0"), "fixture", mods); err != nil {
		t.Fatal(err)
	}
	write("lib.go", src)
	write("CHANGELOG.md", changelog)
	return root, mods
}

// checkFixture runs the check and returns whether it passed and its report.
func checkFixture(t *testing.T, src, changelog string) (bool, string) {
	t.Helper()
	root, mods := fixture(t, src, changelog)
	var out bytes.Buffer
	ok, err := check(root, "", filepath.Join(root, "CHANGELOG.md"), mods, &out)
	if err != nil {
		t.Fatal(err)
	}
	return ok, out.String()
}

const changelogHead = "# Changelog\n\n## [Unreleased]\n\n### Added\n\n- `New`.\n\n"

func TestAdditionsAndRenamedParametersPass(t *testing.T) {
	t.Parallel()
	src := strings.Replace(releaseSrc, "func Old(ctx context.Context, n int)", "func Old(c context.Context, count int)", 1) +
		"\nfunc New() {}\n\nfunc (t T) Extra() {}\n"
	ok, out := checkFixture(t, src, changelogHead)
	if !ok || !strings.Contains(out, "0 removed or changed, 2 added") {
		t.Fatalf("want a pass with 2 additions:\n%s", out)
	}
}

func TestRemovalNotNamedFails(t *testing.T) {
	t.Parallel()
	src := strings.Replace(releaseSrc, "func Old(ctx context.Context, n int) error { return nil }", "", 1)
	for name, changelog := range map[string]string{
		"no list":            changelogHead,
		"another name":       changelogHead + "### Changed (incompatible)\n\n- `T.Get` is now `T.Lookup`.\n",
		"not in backquotes":  changelogHead + "### Changed (incompatible)\n\n- Old is gone.\n",
		"in the old release": changelogHead + "## [v0.1.0]\n\n### Changed (incompatible)\n\n- `Old`.\n",
		"in a comment":       changelogHead + "### Changed (incompatible)\n\n<!-- for example\n- `Old` is gone -->\n<!-- `Old` --> - `T`\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok, out := checkFixture(t, src, changelog)
			if ok || !strings.Contains(out, "NOT NAMED in CHANGELOG: removed  lib.Old  (was: func(context.Context, int) error)") {
				t.Fatalf("want a failure naming lib.Old:\n%s", out)
			}
		})
	}
}

func TestRemovalNamedPasses(t *testing.T) {
	t.Parallel()
	src := strings.Replace(releaseSrc, "func Old(ctx context.Context, n int) error { return nil }", "", 1)
	for name, entry := range map[string]string{
		"short":     "- `Old` is gone: use `New`.\n",
		"qualified": "- `lib.Old()` is gone.\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok, out := checkFixture(t, src, changelogHead+"### Changed (incompatible)\n\n"+entry+"\n## [v0.1.0]\n")
			if !ok || !strings.Contains(out, "named in CHANGELOG: removed  lib.Old") {
				t.Fatalf("want a pass:\n%s", out)
			}
		})
	}
}

// A changed signature, field type or constant value is a change; naming
// the type covers its methods and fields.
func TestChangesAndTheirNames(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer(
		"func (t *T) Get(key string) (string, bool) { return \"\", false }", "func (t *T) Get(key string) string { return \"\" }",
		"Size int", "Size int64",
		"const Limit = 3", "const Limit = 4",
	).Replace(releaseSrc)
	ok, out := checkFixture(t, src, changelogHead)
	for _, want := range []string{
		"NOT NAMED in CHANGELOG: changed  lib.T.Get  (was: method (*T) func(string) (string, bool); now: method (*T) func(string) string)",
		"NOT NAMED in CHANGELOG: changed  lib.T.Size  (was: field int; now: field int64)",
		"NOT NAMED in CHANGELOG: changed  lib.Limit  (was: const untyped int = 3; now: const untyped int = 4)",
		"3 incompatible change(s) not named",
	} {
		if ok || !strings.Contains(out, want) {
			t.Fatalf("want %q:\n%s", want, out)
		}
	}
	ok, out = checkFixture(t, src, changelogHead+"### Changed (incompatible)\n\n- `T`: `Get` drops its bool, `Size` is an int64.\n- `Limit` is 4.\n")
	if !ok {
		t.Fatalf("want a pass:\n%s", out)
	}
}

// A method added to an interface others implement breaks them; one added
// to an interface nobody else can implement does not.
func TestInterfaceMethods(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer(
		"Handle(ctx context.Context) error }", "Handle(ctx context.Context) error; Close() error }",
		"Name() string\n", "Name() string\n\tID() int\n",
	).Replace(releaseSrc)
	ok, out := checkFixture(t, src, changelogHead)
	if ok || !strings.Contains(out, "changed  lib.Handler") || strings.Contains(out, "lib.Sealed") {
		t.Fatalf("want lib.Handler changed, lib.Sealed not:\n%s", out)
	}
	if !strings.Contains(out, "1 removed or changed, 1 added") {
		t.Fatalf("want Sealed.ID as an addition:\n%s", out)
	}
}

// The exit status: 1 for an unnamed change, 2 when there is no release to
// compare with.
func TestExitStatus(t *testing.T) {
	root, _ := fixture(t, "package lib\n", changelogHead)
	var out, errOut bytes.Buffer
	saved := libraries
	libraries = []module{{".", "lib.txt"}}
	t.Cleanup(func() { libraries = saved })
	if st := run([]string{"-root", root}, &out, &errOut); st != 1 {
		t.Fatalf("exit %d, want 1:\n%s%s", st, out.String(), errOut.String())
	}
	if st := run([]string{"-root", root, "-against", filepath.Join(root, "api", "v9.9.9")}, &out, &errOut); st != 2 {
		t.Fatalf("exit %d, want 2", st)
	}
}

func TestNewestRelease(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"v0.9.0", "v0.10.0", "v0.2.0", "notes"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := newestRelease(dir)
	if err != nil || filepath.Base(got) != "v0.10.0" {
		t.Fatalf("newestRelease = %q, %v; want v0.10.0", got, err)
	}
}
