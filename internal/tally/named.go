package tally

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Named holds the values (Transports, Pools) an exporter reports by name.
// Its methods are safe for concurrent use.
type Named[T comparable] struct {
	mu sync.Mutex
	m  map[string]T
}

// Add holds v under name. op prefixes its errors: an empty name, a name
// already held, a zero v.
func (n *Named[T]) Add(op, name string, v T) error {
	var zero T
	switch {
	case name == "":
		return fmt.Errorf("%s: the name is empty", op)
	case v == zero:
		return fmt.Errorf("%s %q: nil", op, name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[name]; ok {
		return fmt.Errorf("%s %q: the name is already in use", op, name)
	}
	if n.m == nil {
		n.m = make(map[string]T)
	}
	n.m[name] = v
	return nil
}

// Remove drops name and reports whether it was held.
func (n *Named[T]) Remove(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.m[name]
	delete(n.m, name)
	return ok
}

// Each calls fn with each value, in the order of the names, outside the
// lock.
func (n *Named[T]) Each(fn func(name string, v T)) {
	type entry struct {
		name string
		v    T
	}
	n.mu.Lock()
	entries := make([]entry, 0, len(n.m))
	for name, v := range n.m {
		entries = append(entries, entry{name, v})
	}
	n.mu.Unlock()
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
	for _, e := range entries {
		fn(e.name, e.v)
	}
}
