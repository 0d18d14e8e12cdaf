// Package demodb holds the database legs of the demo (package demo): the
// real drivers against the local servers, stock and wired to rstpool as
// README.md and CLIENTS.md show. Importing it registers them; the command
// does:
//
//	go run ./cmd/rstpool demo --with postgres,mysql,redis
package demodb

import "github.com/rstpool/rstpool/cmd/rstpool/internal/demo"

func init() {
	for _, db := range []demo.Database{postgresDB, mysqlDB, redisDB} {
		demo.RegisterDatabase(db)
	}
}
