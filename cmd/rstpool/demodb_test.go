package main

// The tests run the database legs whatever the build tags.
import _ "github.com/rstpool/rstpool/cmd/rstpool/internal/demodb"
