//go:build demodb

package main

// The database legs of "rstpool demo --with": the real drivers, linked in
// only with the build tag demodb so that the default build needs none.
import _ "github.com/rstpool/rstpool/cmd/rstpool/internal/demodb"
