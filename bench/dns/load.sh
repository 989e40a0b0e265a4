#!/usr/bin/env bash
# bench/dns/load.sh: zone-file load time, `blowback dnsd --zone-file` against
# rbldnsd on the same file (issue 17 item 2).
#
#   bench/dns/load.sh [-n ENTRIES] [-r RUNS] [-u]
#
# Builds blowback and an ENTRIES-line zone (bench/dns/genzone, default 10M),
# then, RUNS times (default 3), starts each server pinned to CPU 0 (-u: not
# pinned) and prints the time from start until the last IPv4 entry of the
# file is answered, the server's CPU time (utime+stime) by then, and its
# peak RSS (VmHWM). BASE=/path/to/older/blowback adds a third server, for
# before/after figures.
set -euo pipefail
ENTRIES=10000000
RUNS=3
PIN=1
while getopts "n:r:u" o; do
	case $o in
	n) ENTRIES=$OPTARG ;;
	r) RUNS=$OPTARG ;;
	u) PIN=0 ;;
	*) sed -n '2,13p' "$0"; exit 2 ;;
	esac
done
for t in dig python3 taskset; do command -v $t >/dev/null || { echo "$t is needed" >&2; exit 1; }; done
RBLDNSD=$(command -v rbldnsd || echo /usr/sbin/rbldnsd)
[ -x "$RBLDNSD" ] || { echo "rbldnsd is needed (Debian package rbldnsd)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/bench-dns-load.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
ZONE=bl.bench.test
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/blowback" ./cmd/blowback &&
	go run ./bench/dns/genzone -n "$ENTRIES" -nq 10 -zone $ZONE -out "$WORK/zone.rbldnsd" -queries "$WORK/q.txt")
PROBE=$(grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' "$WORK/zone.rbldnsd" | tail -1 | awk -F. '{print $4"."$3"."$2"."$1}').$ZONE
HZ=$(getconf CLK_TCK)
PINCMD=()
[ "$PIN" = 1 ] && PINCMD=(taskset -c 0)
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
one() { # name cmd... (PORT in the arguments is replaced)
	local name=$1 port pid t0 t1 cpu hwm ok try
	shift
	for try in 1 2 3; do # the free UDP port may be taken for TCP: then again
		port=$(freeport)
		t0=$(date +%s.%N)
		"${PINCMD[@]}" "${@//PORT/$port}" >"$WORK/$name.log" 2>&1 &
		pid=$!
		ok=0
		for _ in $(seq 1 3000); do
			kill -0 "$pid" 2>/dev/null || break
			if dig +tries=1 +time=1 +short @127.0.0.1 -p "$port" "$PROBE" A 2>/dev/null | grep -q '^127\.'; then
				ok=1
				break
			fi
			sleep 0.01
		done
		[ "$ok" = 1 ] && break
		wait "$pid" 2>/dev/null || true
		echo "$name did not answer (try $try): $(tail -1 "$WORK/$name.log")" >&2
	done
	[ "$ok" = 1 ] || exit 1
	t1=$(date +%s.%N)
	cpu=$(awk -v hz="$HZ" '{printf "%.2f", ($14+$15)/hz}' "/proc/$pid/stat")
	hwm=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$pid/status")
	printf "%-10s first answer %5.2f s   CPU %s s   peak RSS %s MB\n" "$name" "$(echo "$t1 $t0" | awk '{print $1-$2}')" "$cpu" "$hwm"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
echo "== $ENTRIES entries, $([ "$PIN" = 1 ] && echo "servers pinned to CPU 0" || echo "not pinned")"
for _ in $(seq 1 "$RUNS"); do
	one rbldnsd "$RBLDNSD" -n -b "127.0.0.1/PORT" -w "$WORK" "$ZONE:combined:zone.rbldnsd"
	[ -n "${BASE:-}" ] && one base "$BASE" dnsd --zone-file "$WORK/zone.rbldnsd" --zone $ZONE --dns "127.0.0.1:PORT" --metrics 127.0.0.1:0
	one blowback "$WORK/blowback" dnsd --zone-file "$WORK/zone.rbldnsd" --zone $ZONE --dns "127.0.0.1:PORT" --metrics 127.0.0.1:0
	echo "   load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
