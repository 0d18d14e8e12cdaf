// Tools that check the repository, in a module of their own so that their
// dependencies stay out of the library modules.
module github.com/rstpool/rstpool/tools

go 1.26.0

require (
	golang.org/x/mod v0.41.0
	golang.org/x/tools v0.51.0
)

require golang.org/x/sync v0.23.0 // indirect
