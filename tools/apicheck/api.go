package main

import (
	"fmt"
	"go/types"
	"os"
	"slices"
	"strings"

	"golang.org/x/tools/go/packages"
)

// An entry is one exported name of a package and what a caller relies on:
// its kind and type, written without parameter names (renaming a
// parameter breaks nobody).
type entry struct {
	Name string // qualified by the package name: rstpool.Pool.Stat
	Desc string // "method (*Pool) func() PoolStat"
}

// loadModule describes the public API of every package of the module in
// dir, internal packages, commands and tests excluded. It loads the module
// on its own (GOWORK=off): its go.mod says what it builds against.
func loadModule(dir string) ([]entry, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedTypes,
		Dir:  dir,
		Env:  append(os.Environ(), "GOWORK=off"),
	}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	root := ""
	for _, p := range pkgs {
		if root == "" || len(p.PkgPath) < len(root) {
			root = p.PkgPath
		}
	}
	var out []entry
	for _, p := range pkgs {
		if p.Name == "main" || isInternal(p.PkgPath) {
			continue // no API; its errors are the build's to report
		}
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("load %s: %v", p.PkgPath, p.Errors[0])
		}
		qual := p.Name
		if p.PkgPath != root {
			qual = strings.TrimPrefix(p.PkgPath, root+"/")
		}
		out = append(out, describe(p.Types, qual)...)
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func isInternal(path string) bool {
	return strings.HasSuffix(path, "/internal") || strings.Contains(path, "/internal/")
}

// describe lists the exported names of pkg: constants with their values,
// variables, functions, types, the exported fields of structs and the
// methods of every type (promoted ones included).
func describe(pkg *types.Package, qual string) []entry {
	p := printer{pkg: pkg}
	var out []entry
	add := func(name, desc string) { out = append(out, entry{qual + "." + name, desc}) }
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		switch o := scope.Lookup(name).(type) {
		case *types.Const:
			if o.Exported() {
				add(name, "const "+p.typ(o.Type())+" = "+o.Val().ExactString())
			}
		case *types.Var:
			if o.Exported() {
				add(name, "var "+p.typ(o.Type()))
			}
		case *types.Func:
			if o.Exported() {
				add(name, "func"+p.sig(o.Type().(*types.Signature)))
			}
		case *types.TypeName:
			if o.Exported() {
				p.typeName(o, add)
			}
		}
	}
	return out
}

// typeName adds a type, its exported fields and its methods.
func (p printer) typeName(o *types.TypeName, add func(name, desc string)) {
	name := o.Name()
	if o.IsAlias() {
		add(name, "type = "+p.typ(types.Unalias(o.Type())))
		return
	}
	named := o.Type().(*types.Named)
	tparams := p.typeParams(named.TypeParams())
	switch u := named.Underlying().(type) {
	case *types.Struct:
		add(name, "type"+tparams+" struct")
		for i := range u.NumFields() {
			f := u.Field(i)
			if !f.Exported() {
				continue
			}
			kind := "field "
			if f.Embedded() {
				kind = "embedded field "
			}
			add(name+"."+f.Name(), kind+p.typ(f.Type()))
		}
	case *types.Interface:
		p.iface(name, tparams, u, add)
		return // an interface's methods are in its own line
	default:
		add(name, "type"+tparams+" "+p.typ(u))
	}
	value := types.NewMethodSet(named)
	all := types.NewMethodSet(types.NewPointer(named))
	for i := range all.Len() {
		m := all.At(i).Obj().(*types.Func)
		if !m.Exported() {
			continue
		}
		recv := "(*" + name + ")"
		if value.Lookup(m.Pkg(), m.Name()) != nil {
			recv = "(" + name + ")"
		}
		add(name+"."+m.Name(), "method "+recv+" func"+p.sig(m.Type().(*types.Signature)))
	}
}

// iface adds an interface type. One that other packages can implement is
// one line with every method: adding a method breaks its implementations.
// One with unexported methods (nobody else implements it) gets a line per
// exported method, so that adding one is an addition.
func (p printer) iface(name, tparams string, u *types.Interface, add func(name, desc string)) {
	sealed := false
	var methods []string
	for i := range u.NumMethods() {
		m := u.Method(i)
		if !m.Exported() {
			sealed = true
			continue
		}
		methods = append(methods, m.Name()+p.sig(m.Type().(*types.Signature)))
	}
	if sealed {
		add(name, "type"+tparams+" interface (sealed: it has unexported methods)")
		for i := range u.NumMethods() {
			if m := u.Method(i); m.Exported() {
				add(name+"."+m.Name(), "interface method func"+p.sig(m.Type().(*types.Signature)))
			}
		}
		return
	}
	add(name, "type"+tparams+" "+p.interfaceBody(u, methods))
}

// A printer writes types without parameter names, the package's own names
// unqualified and others by import path.
type printer struct{ pkg *types.Package }

func (p printer) qualify(q *types.Package) string {
	if q == p.pkg {
		return ""
	}
	return q.Path()
}

func (p printer) typ(t types.Type) string {
	switch t := t.(type) {
	case *types.Basic:
		return t.Name()
	case *types.Alias:
		return p.qualified(t.Obj()) + p.typeArgs(t.TypeArgs())
	case *types.Named:
		return p.qualified(t.Obj()) + p.typeArgs(t.TypeArgs())
	case *types.TypeParam:
		return t.Obj().Name()
	case *types.Pointer:
		return "*" + p.typ(t.Elem())
	case *types.Slice:
		return "[]" + p.typ(t.Elem())
	case *types.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), p.typ(t.Elem()))
	case *types.Map:
		return "map[" + p.typ(t.Key()) + "]" + p.typ(t.Elem())
	case *types.Chan:
		return [...]string{"chan ", "chan<- ", "<-chan "}[t.Dir()] + p.typ(t.Elem())
	case *types.Signature:
		return "func" + p.sig(t)
	case *types.Struct:
		var fields []string
		for i := range t.NumFields() {
			f := t.Field(i)
			s := p.typ(f.Type())
			if !f.Embedded() {
				s = f.Name() + " " + s
			}
			fields = append(fields, s)
		}
		return "struct{" + strings.Join(fields, "; ") + "}"
	case *types.Interface:
		var methods []string
		for i := range t.NumMethods() {
			m := t.Method(i)
			methods = append(methods, m.Name()+p.sig(m.Type().(*types.Signature)))
		}
		return p.interfaceBody(t, methods)
	case *types.Union:
		var terms []string
		for i := range t.Len() {
			tilde := ""
			if t.Term(i).Tilde() {
				tilde = "~"
			}
			terms = append(terms, tilde+p.typ(t.Term(i).Type()))
		}
		return strings.Join(terms, " | ")
	}
	return types.TypeString(t, p.qualify)
}

// interfaceBody writes an interface from its methods, sorted, and its
// embedded non-interface types (constraints).
func (p printer) interfaceBody(t *types.Interface, methods []string) string {
	if t.Empty() {
		return "any"
	}
	slices.Sort(methods)
	for i := range t.NumEmbeddeds() {
		if e := t.EmbeddedType(i); !types.IsInterface(e) {
			methods = append(methods, p.typ(e))
		}
	}
	return "interface{" + strings.Join(methods, "; ") + "}"
}

func (p printer) qualified(o *types.TypeName) string {
	if o.Pkg() == nil || o.Pkg() == p.pkg {
		return o.Name()
	}
	return o.Pkg().Path() + "." + o.Name()
}

func (p printer) typeArgs(l *types.TypeList) string {
	if l.Len() == 0 {
		return ""
	}
	var args []string
	for i := range l.Len() {
		args = append(args, p.typ(l.At(i)))
	}
	return "[" + strings.Join(args, ", ") + "]"
}

func (p printer) typeParams(l *types.TypeParamList) string {
	if l.Len() == 0 {
		return ""
	}
	var ps []string
	for i := range l.Len() {
		ps = append(ps, l.At(i).Obj().Name()+" "+p.typ(l.At(i).Constraint()))
	}
	return "[" + strings.Join(ps, ", ") + "]"
}

// sig writes a signature without its "func" and without names.
func (p printer) sig(s *types.Signature) string {
	params := p.tuple(s.Params(), s.Variadic())
	out := p.typeParams(s.TypeParams()) + "(" + strings.Join(params, ", ") + ")"
	switch res := p.tuple(s.Results(), false); len(res) {
	case 0:
	case 1:
		out += " " + res[0]
	default:
		out += " (" + strings.Join(res, ", ") + ")"
	}
	return out
}

func (p printer) tuple(t *types.Tuple, variadic bool) []string {
	var out []string
	for i := range t.Len() {
		ty := t.At(i).Type()
		if variadic && i == t.Len()-1 {
			out = append(out, "..."+p.typ(ty.(*types.Slice).Elem()))
			continue
		}
		out = append(out, p.typ(ty))
	}
	return out
}
