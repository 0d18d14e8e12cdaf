package main

// The database legs of "rstpool demo --with": the real drivers, which
// "rstpool probe --dsn" needs as well.
import _ "github.com/rstpool/rstpool/cmd/rstpool/internal/demodb"
