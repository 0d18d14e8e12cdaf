// The command, in a module of its own so that the drivers of its demo stay
// out of the core module. The replace directives make a clone build on its
// own (GOWORK=off go build, go install ./cmd/rstpool) against the root module
// and rstpgx of the same checkout. go install ...@VERSION refuses a module
// whose go.mod has replace directives, so the commit that a cmd/rstpool tag
// names drops them and requires released versions instead (RELEASING.md).
module github.com/rstpool/rstpool/cmd/rstpool

go 1.26.0

replace (
	github.com/rstpool/rstpool => ../..
	github.com/rstpool/rstpool/rstpgx => ../../rstpgx
)

require (
	github.com/go-sql-driver/mysql v1.10.1
	github.com/jackc/pgx/v5 v5.12.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/rstpool/rstpool v0.0.0-00010101000000-000000000000
	github.com/rstpool/rstpool/rstpgx v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
