#!/bin/bash
# Trap ingest throughput of a full node (`blowback run`): Postfix's
# smtp-source sends M messages over S concurrent sessions; every 250 means
# the evidence was fsynced. Prints msgs/s and the mean commit time from
# /metrics. Per-IP limits are lifted (all load comes from 127.0.0.1).
#   bench/ingest/run.sh                 # S=100 M=5000
#   S=20 M=2000 bench/ingest/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${S:-100} M=${M:-5000}
src=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$src" ] || { echo "smtp-source not found (apt-get install postfix)" >&2; exit 1; }
work=$(mktemp -d /tmp/blowback-ingest.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/blowback" ./cmd/blowback
printf '[trap]\nconnection_rate_per_ip = 0\nmax_connections_per_ip = 1000\nmax_connections = 2000\n' > "$work/c.toml"
"$work/blowback" run --config "$work/c.toml" --data "$work/d" --smtp 127.0.0.1:0 --dns 127.0.0.1:0 --http 127.0.0.1:0 2> "$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "blowback running" "$work/log" && break; sleep 0.1; done
smtp=$(grep -o 'smtp=[0-9.:]*' "$work/log" | tail -1 | cut -d= -f2)
http=$(grep -o 'http=[0-9.:]*' "$work/log" | tail -1 | cut -d= -f2)
t0=$(date +%s.%N)
"$src" -s "$S" -m "$M" -l 5000 -f '' -t x@trap.blowback.test "$smtp"
t1=$(date +%s.%N)
m=$(curl -s "http://$http/metrics" | grep -E '^blowback_trap_commit_duration_seconds_(sum|count)' | awk '{print $2}' | paste -sd' ')
awk -v t0="$t0" -v t1="$t1" -v m="$M" -v s="$S" -v c="$m" 'BEGIN{split(c,a," "); printf "%d messages, %d sessions: %.0f msgs/s; mean DATA-end to commit %.1f ms\n", m, s, m/(t1-t0), 1000*a[1]/a[2]}'
