module github.com/rstpool/rstpool/cmd/rstpool

go 1.26.0

require (
	github.com/go-sql-driver/mysql v1.10.1
	github.com/jackc/pgx/v5 v5.12.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/rstpool/rstpool v0.0.0-00010101000000-000000000000
	github.com/rstpool/rstpool/rstpgx v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)
