#!/bin/sh
# Regenerates the micro-benchmark figures of BENCHMARKS.md: every cost is
# measured against the stock client in the same run and compared with
# benchstat (go install golang.org/x/perf/cmd/benchstat@latest). Writes raw
# results and benchstat tables to the directory given (default: bench-out).
# COUNT sets the runs per benchmark (default 10). Needs PostgreSQL on
# 127.0.0.1:5432 for the rstpgx part, which is skipped otherwise.
set -eu
out=${1:-bench-out}
count=${COUNT:-10}
mkdir -p "$out"
PATH="$PATH:$(go env GOPATH)/bin"

run() { # name dir pattern
	(cd "$2" && go test -run '^$' -bench "$3" -count "$count" .) >"$out/$1.txt"
}
run core . 'BenchmarkCheck$|BenchmarkWrite$|BenchmarkRoundTrip$'
run http . 'BenchmarkGET$'
run pool . 'BenchmarkPoolAcquireRelease$|BenchmarkPoolUpkeepRound$'
run pgx rstpgx 'BenchmarkSelect1$|BenchmarkCheckout$'

{
	echo "## tracked Conn vs *net.TCPConn (-col /conn)"
	benchstat -col /conn -filter '.name:(RoundTrip OR Write)' "$out/core.txt"
	echo "## the check before use"
	benchstat -filter '.name:Check' "$out/core.txt"
	echo "## keep-alive GET, rstpool.Transport vs http.Transport (-col /client)"
	benchstat -col /client "$out/http.txt"
	echo "## Pool Acquire+Release vs raw puddle (-col /pool)"
	benchstat -col /pool -filter '.name:PoolAcquireRelease' "$out/pool.txt"
	echo "## Pool upkeep round"
	benchstat -filter '.name:PoolUpkeepRound' "$out/pool.txt"
	echo "## pgxpool SELECT 1 and checkout check (-col /pool, /check)"
	benchstat -col /pool -filter '.name:Select1' "$out/pgx.txt"
	benchstat -col /check -filter '.name:Checkout' "$out/pgx.txt"
} >"$out/benchstat.txt" 2>&1
cat "$out/benchstat.txt"
