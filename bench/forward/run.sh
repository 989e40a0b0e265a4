#!/usr/bin/env bash
# bench/forward/run.sh: the figures of docs/scaling.md.
#
#   1. forwarded events/s from two trap nodes (real `blowback trap`
#      processes, spools filled beforehand) into one central node (`blowback
#      run`) over HTTPS on loopback, without and with raw messages;
#   2. the central node's intake alone (POST /api/v1/evidence in process,
#      synced on-disk store), without and with raw messages;
#   3. zone size, export sizes, rsync and AXFR/IXFR transfer sizes at 1M
#      and 10M entries (bench/forward/zonesize).
#
# Usage: bench/forward/run.sh [-n EVENTS] [-z "1000000 10000000"]
set -euo pipefail
cd "$(dirname "$0")/../.."

EVENTS=20000
SIZES="1000000 10000000"
while getopts "n:z:" o; do
	case $o in
	n) EVENTS=$OPTARG ;;
	z) SIZES=$OPTARG ;;
	*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done

echo "== machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== two traps -> one central node ($EVENTS events)"
go test ./cmd/blowback -run '^$' -bench ForwardTwoTraps -benchtime "${EVENTS}x" -count 3 | grep -E '^Benchmark'
echo "== central intake alone ($EVENTS events)"
go test ./intake -run '^$' -bench EvidenceIntake -benchtime "${EVENTS}x" -count 3 | grep -E '^Benchmark'
for n in $SIZES; do
	echo "== zone of $n entries"
	go run ./bench/forward/zonesize -n "$n"
done
