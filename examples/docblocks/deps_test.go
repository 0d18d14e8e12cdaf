package docblocks

// The modules of the packages the blocks may use without an import line
// (see imports): imported here so that this module's go.mod requires them.
import (
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/rstpool/rstpool"
	_ "github.com/rstpool/rstpool/rstgrpc"
	_ "github.com/rstpool/rstpool/rstotel"
	_ "github.com/rstpool/rstpool/rstpgx"
	_ "github.com/rstpool/rstpool/rstprom"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/keepalive"
)
