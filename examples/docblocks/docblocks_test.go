// Package docblocks checks that the Go code in the repository's Markdown
// compiles: README.md, CLIENTS.md, and every other *.md file at the root
// of the repository or one directory below it. It also keeps the docs in
// step with the code where compiling cannot (consistency_test.go).
//
// # Convention for a ```go block
//
// A block whose first line of code starts with "package" is a complete
// file. It is built as it stands, in a package of its own.
//
// Any other block is the body of a function returning error, and reads as
// a step of a program:
//
//   - It may begin with import lines, which are moved to the file's
//     imports. Without them, the packages listed in imports below are
//     imported by their usual names (rstpool, rstpgx, rstgrpc, rstprom, rstotel, prometheus, http, sql,
//     atomic, slog, pgx, pgxpool, stdlib, mysql, redis, grpc, keepalive,
//     insecure, and the common standard ones) when the block uses them.
//   - These placeholders are in scope without being declared: ctx
//     (context.Context), d (*rstpool.Dialer), dsn (a PostgreSQL URL), db
//     (*sql.DB), logger (*slog.Logger) and addr (a host:port). A block may
//     declare its own variables of those names.
//   - A variable the block declares at its top level need not be used (the
//     harness adds "_ = &x" after its declaration, on the same line): a
//     block shows a step, not a whole program.
//   - It may "return err"; when its last statement is not a return, the
//     harness adds "return nil".
//   - Local types are fine; methods are not (they need a complete file).
//
// The blocks are written into a temporary package inside this module, one
// function per block, each under a //line directive naming the Markdown
// file and line, and built with "go build" and checked with "go vet": a
// failure names the Markdown file and the line of the block's code.
package docblocks

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// imports are the packages a function-body block may use without an import
// line, by the name it uses.
var imports = map[string]string{
	"bufio": "bufio", "context": "context", "errors": "errors", "fmt": "fmt", "io": "io",
	"log": "log", "net": "net", "os": "os", "strings": "strings", "syscall": "syscall", "time": "time",
	"atomic": "sync/atomic", "http": "net/http", "sql": "database/sql", "slog": "log/slog",

	"rstpool":    "github.com/rstpool/rstpool",
	"rstpgx":     "github.com/rstpool/rstpool/rstpgx",
	"rstgrpc":    "github.com/rstpool/rstpool/rstgrpc",
	"rstprom":    "github.com/rstpool/rstpool/rstprom",
	"rstotel":    "github.com/rstpool/rstpool/rstotel",
	"prometheus": "github.com/prometheus/client_golang/prometheus",

	"pgx":       "github.com/jackc/pgx/v5",
	"pgxpool":   "github.com/jackc/pgx/v5/pgxpool",
	"stdlib":    "github.com/jackc/pgx/v5/stdlib",
	"mysql":     "github.com/go-sql-driver/mysql",
	"redis":     "github.com/redis/go-redis/v9",
	"grpc":      "google.golang.org/grpc",
	"keepalive": "google.golang.org/grpc/keepalive",
	"insecure":  "google.golang.org/grpc/credentials/insecure",
}

// placeholders declares what every function-body block may use.
const placeholders = `package blocks

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/rstpool/rstpool"
)

// The placeholders of the Markdown's Go blocks.
var (
	ctx    = context.Background()
	d      = &rstpool.Dialer{}
	dsn    = "postgres://postgres@127.0.0.1:5432/test"
	db     *sql.DB
	logger = slog.Default()
	addr   = "127.0.0.1:7000"
)
`

// A block is one ```go block of a Markdown file.
type block struct {
	file string // absolute path of the Markdown file
	line int    // line of the block's first line of code
	code string
}

func (b block) String() string { return fmt.Sprintf("%s:%d", filepath.Base(b.file), b.line) }

func (b block) isFile() bool {
	for _, l := range strings.Split(b.code, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "//") {
			return strings.HasPrefix(t, "package ")
		}
	}
	return false
}

// extract returns the ```go blocks of the Markdown in text.
func extract(file, text string) []block {
	var out []block
	var cur *block
	var code []string
	for i, l := range strings.Split(text, "\n") {
		switch t := strings.TrimSpace(l); {
		case cur == nil && t == "```go":
			cur, code = &block{file: file, line: i + 2}, nil
		case cur != nil && t == "```":
			cur.code = strings.Join(code, "\n") + "\n"
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			code = append(code, l)
		}
	}
	return out
}

// markdown returns the Markdown files whose blocks must compile.
func markdown(t *testing.T) []string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	files := []string{filepath.Join(root, "README.md"), filepath.Join(root, "CLIENTS.md")}
	for _, pattern := range []string{"*.md", "*/*.md"} {
		more, err := filepath.Glob(filepath.Join(root, pattern))
		require.NoError(t, err)
		for _, f := range more {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	return files
}

// TestMarkdownBlocksCompile builds every Go block of the repository's
// Markdown.
func TestMarkdownBlocksCompile(t *testing.T) {
	var blocks []block
	for _, f := range markdown(t) {
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		blocks = append(blocks, extract(f, string(text))...)
	}
	require.NotEmpty(t, blocks)
	out, err := build(t, blocks)
	require.NoError(t, err, "a Go block in the Markdown does not compile:\n%s", out)
}

// TestBrokenBlockFails shows that the harness catches a block that does not
// compile, and names its file and line.
func TestBrokenBlockFails(t *testing.T) {
	good := block{file: "/docs/GOOD.md", line: 10, code: "idle, _, _ := d.Limits()\nfmt.Println(idle)\n"}
	bad := block{file: "/docs/BROKEN.md", line: 20, code: "pool, _ := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, Ping: ping})\n"}
	out, err := build(t, []block{good})
	require.NoError(t, err, out)
	out, err = build(t, []block{good, bad})
	require.Error(t, err)
	require.Contains(t, out, "BROKEN.md:20")
	require.Contains(t, out, "undefined: ping")
}

// build writes the blocks into a temporary package of this module and
// builds and vets it; it returns the go command's output.
func build(t *testing.T, blocks []block) (string, error) {
	dir, err := os.MkdirTemp(".", "_blocks")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pkgs := []string{"./" + dir}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "placeholders.go"), []byte(placeholders), 0o644))
	for i, b := range blocks {
		if b.isFile() {
			sub := filepath.Join(dir, fmt.Sprintf("file%d", i))
			require.NoError(t, os.Mkdir(sub, 0o755))
			src := fmt.Sprintf("//line %s:%d\n%s", b.file, b.line, b.code)
			require.NoError(t, os.WriteFile(filepath.Join(sub, "block.go"), []byte(src), 0o644))
			pkgs = append(pkgs, "./"+sub)
			continue
		}
		src, err := wrap(b, fmt.Sprintf("block%d", i))
		if err != nil {
			return err.Error(), err
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("block%d.go", i)), []byte(src), 0o644))
	}
	var out bytes.Buffer
	// The placeholders make a package that is not main, so "go build"
	// discards what it builds.
	for _, args := range [][]string{{"build"}, {"vet"}} {
		cmd := exec.Command(goCommand(t), append(args, pkgs...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("go %s: %w", args[0], err)
		}
	}
	return out.String(), nil
}

func goCommand(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	require.NoError(t, err, "the go command is not on PATH")
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
}

// importLine matches an import line of a block: import "path", or with a
// name.
var importLine = regexp.MustCompile(`^import\s+((?:\w+\s+)?"([^"]+)")\s*$`)

// wrap returns a file holding b as the body of a function named name (see
// the package documentation).
func wrap(b block, name string) (string, error) {
	lines := strings.Split(b.code, "\n")
	own := map[string]string{} // name → import spec
	for i, l := range lines {
		m := importLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			if strings.TrimSpace(l) == "" {
				continue
			}
			break
		}
		spec, alias := m[1], pathName(m[2])
		if f := strings.Fields(spec); len(f) == 2 {
			alias = f[0]
		}
		own[alias] = spec
		lines[i] = "" // keep the line numbers
	}
	src := fmt.Sprintf("package blocks\n\nfunc %s() error {\n//line %s:%d\n%s\n}\n", name, b.file, b.line, strings.Join(lines, "\n"))
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, b.String(), src, parser.ParseComments)
	if err != nil {
		return "", fmt.Errorf("%s: not a function body: %w", b, err)
	}
	body := f.Decls[0].(*ast.FuncDecl).Body.List
	src = useDeclared(fset, src, body)
	if n := len(body); n == 0 || !isReturn(body[n-1]) {
		src = strings.TrimSuffix(src, "}\n") + "return nil\n}\n"
	}
	for _, id := range usedPackages(f) {
		if p, ok := imports[id]; ok && own[id] == "" {
			own[id] = strconv.Quote(p)
		}
	}
	specs := slices.Sorted(maps.Values(own))
	head := "// Code generated by docblocks_test.go from Markdown. DO NOT EDIT.\n\npackage blocks\n\nimport (\n\t" +
		strings.Join(specs, "\n\t") + "\n)\n\n"
	return strings.Replace(src, "package blocks\n\n", head, 1), nil
}

func isReturn(s ast.Stmt) bool {
	_, ok := s.(*ast.ReturnStmt)
	return ok
}

// usedPackages returns the names the file uses as the left of a selector
// (x.Y) without declaring them: the packages it needs.
func usedPackages(f *ast.File) []string {
	unresolved := map[*ast.Ident]bool{}
	for _, id := range f.Unresolved {
		unresolved[id] = true
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && unresolved[id] {
				names = append(names, id.Name)
			}
		}
		return true
	})
	return names
}

// pathName is the name a package is imported by when its import line names
// none.
func pathName(path string) string {
	for name, p := range imports {
		if p == path {
			return name
		}
	}
	return filepath.Base(path)
}

// useDeclared adds "_ = &x" (no copy) after each top-level statement of the block that
// declares x, on the same line.
func useDeclared(fset *token.FileSet, src string, stmts []ast.Stmt) string {
	type insert struct {
		at   int
		text string
	}
	var ins []insert
	for _, s := range stmts {
		var names []string
		switch s := s.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, e := range s.Lhs {
					if id, ok := e.(*ast.Ident); ok && id.Name != "_" {
						names = append(names, id.Name)
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := s.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, spec := range g.Specs {
					for _, id := range spec.(*ast.ValueSpec).Names {
						if id.Name != "_" {
							names = append(names, id.Name)
						}
					}
				}
			}
		}
		for _, n := range names {
			ins = append(ins, insert{fset.Position(s.End()).Offset, "; _ = &" + n})
		}
	}
	sort.SliceStable(ins, func(i, j int) bool { return ins[i].at > ins[j].at })
	for _, in := range ins {
		src = src[:in.at] + in.text + src[in.at:]
	}
	return src
}
