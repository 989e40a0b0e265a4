#!/bin/sh
# Full re-score and evidence-to-answer benchmarks at scale (issue 4).
#
#   bench/scoring/run.sh                 # 1M addresses, 10M events
#   UNITS=100000 EVENTS=1000000 bench/scoring/run.sh
#
# Prints, for each benchmark, Go's figures and the peak RSS and wall time
# of the measuring run (/usr/bin/time -v, Debian package "time"). The
# store is loaded once into $DIR (default /tmp/blowback-bench-$UNITS-$EVENTS;
# 5.5 GB for 10M events, about 3 minutes on two loaded cores: the load goes
# through store.SortedLoader, badger's StreamWriter) by a first run; the
# measured runs reuse it. The first run is also the first open after the
# load (badger reads the last value-log file through then); the measured
# runs are ordinary restarts.
set -eu
cd "$(dirname "$0")/../.."
UNITS=${UNITS:-1000000}
EVENTS=${EVENTS:-10000000}
DIR=${DIR:-/tmp/blowback-bench-$UNITS-$EVENTS}
LATENCY_N=${LATENCY_N:-2000}
mkdir -p "$DIR"
BIN=$DIR/listing.test
go test -c -o "$BIN" ./listing
export BLOWBACK_BENCH_UNITS="$UNITS" BLOWBACK_BENCH_EVENTS="$EVENTS" BLOWBACK_BENCH_DIR="$DIR"

measure() { # name benchtime
	echo "== $1 ($UNITS addresses, $EVENTS events)"
	"$BIN" -test.run '^$' -test.bench "^$1\$" -test.benchtime 1x >"$DIR/$1.load.log" 2>&1 || { cat "$DIR/$1.load.log"; exit 1; }
	grep -h 'loaded' "$DIR/$1.load.log" || true
	/usr/bin/time -v "$BIN" -test.run '^$' -test.bench "^$1\$" -test.benchtime "$2" >"$DIR/$1.log" 2>"$DIR/$1.time" || { cat "$DIR/$1.log" "$DIR/$1.time"; exit 1; }
	grep -h "^Benchmark" "$DIR/$1.log"
	grep -h -E "Maximum resident set size|Elapsed \(wall clock\)" "$DIR/$1.time"
}
measure BenchmarkRebuild 1x
measure BenchmarkIngestToAnswer "${LATENCY_N}x"
measure BenchmarkListedSetMemory 1x
