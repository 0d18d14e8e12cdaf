#!/bin/sh
# Regenerates the micro-benchmark figures of BENCHMARKS.md: every cost is
# measured against the stock client in the same run and compared with
# benchstat (go install golang.org/x/perf/cmd/benchstat@latest). One
# `go test -bench` run per module, so stock and rstpool sub-benchmarks
# alternate within each run. Writes raw results (core.txt, pgx.txt,
# drivers.txt) and benchstat tables (benchstat.txt) to the directory given
# (default: bench-out). COUNT sets the runs per benchmark (default 8);
# about 12 minutes at 8 on a 2-core VM. The rstpgx part needs PostgreSQL on
# 127.0.0.1:5432, the integration part PostgreSQL, MariaDB on
# 127.0.0.1:3306 and Redis on 127.0.0.1:6379; benchmarks whose server does
# not answer are skipped. Runs that use the servers hold a shared lock on
# /tmp/rstpool-services.lock, so that tests that restart them wait.
set -eu
out=${1:-bench-out}
count=${COUNT:-8}
mkdir -p "$out"
PATH="$PATH:$(go env GOPATH)/bin"
lock=/tmp/rstpool-services.lock

run() { # name dir pattern [lock]
	if [ -n "${4:-}" ]; then
		(cd "$2" && flock -s "$lock" go test -run '^$' -bench "$3" -count "$count" -timeout 30m .) >"$out/$1.txt"
	else
		(cd "$2" && go test -run '^$' -bench "$3" -count "$count" -timeout 30m .) >"$out/$1.txt"
	fi
}
run core . 'BenchmarkCheck$|BenchmarkWrite$|BenchmarkRoundTrip$|BenchmarkGET$|BenchmarkPOST$|BenchmarkGETHTTP2$|BenchmarkPoolAcquireRelease$|BenchmarkPoolUpkeepRound$|BenchmarkWrapConnector$'
run pgx rstpgx 'BenchmarkSelect1$|BenchmarkCheckout$|BenchmarkCheck$' lock
run drivers integration 'BenchmarkRedis$|BenchmarkSQL$' lock

table() { # title file benchstat-arguments...
	echo "## $1"
	f=$2
	shift 2
	benchstat "$@" "$out/$f.txt"
	echo
}
{
	table "tracked Conn vs *net.TCPConn (-col /conn)" core -col /conn -filter '.name:(RoundTrip OR Write)'
	table "the check before use" core -filter '.name:Check'
	table "HTTP/1.1 keep-alive GET, rstpool.Transport vs http.Transport (-col /client)" core -col /client -filter '.name:GET'
	table "HTTP/1.1 keep-alive POST, 4 KiB body (-col /client)" core -col /client -filter '.name:POST'
	table "HTTP/2 GET over TLS (-col /client)" core -col /client -filter '.name:GETHTTP2'
	table "Pool Acquire+Release vs raw puddle and database/sql's pool (-col /pool)" core -col /pool -filter '.name:PoolAcquireRelease'
	table "Pool upkeep round" core -filter '.name:PoolUpkeepRound'
	table "database/sql over a trivial loopback driver, WrapConnector vs stock (-col /client)" core -col /client -filter '.name:WrapConnector'
	table "pgxpool SELECT 1, rstpgx.Configure vs stock (-col /client)" pgx -col /client -filter '.name:Select1'
	table "pgxpool Acquire+Release, hot and idle (-col /client)" pgx -col /client -filter '.name:Checkout'
	table "the checks a pgx checkout may run (-col /check)" pgx -col /check -filter '.name:Check'
	table "go-redis with its Dialer from rstpool vs stock (-col /client)" drivers -col /client -filter '.name:Redis'
	table "database/sql on MariaDB and PostgreSQL, WrapConnector vs stock (-col /client)" drivers -col /client -filter '.name:SQL'
} >"$out/benchstat.txt" 2>&1
cat "$out/benchstat.txt"
