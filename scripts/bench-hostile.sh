#!/bin/sh
# Regenerates the hostile-path figures of BENCHMARKS.md: the demo's workload
# at 10,000 requests per client, stock net/http vs rstpool.Transport, without
# faults (the baseline for p99), then under the default fault mix. Writes the
# tables (.txt) and JSON reports (.json) to the directory given (default:
# bench-out). Takes about 8 minutes: the schedule's idle gaps dominate.
set -eu
out=${1:-bench-out}
requests=${REQUESTS:-10000}
mkdir -p "$out"
go build -o "$out/rstpool" ./cmd/rstpool
for faults in none default; do
	"$out/rstpool" demo --requests "$requests" --duration 15m --faults "$faults" \
		--json-out "$out/hostile-$faults.json" >"$out/hostile-$faults.txt"
	cat "$out/hostile-$faults.txt"
done
