#!/usr/bin/env bash
# bench/dns/ab.sh: tail latency of blowback dnsd and rbldnsd in interleaved rounds.
#
# On a shared or virtual machine one fixed-rate run says little: the other
# tenants, the hypervisor and kernel threads (here a DAMON reclaim thread
# that takes the CPU for up to 4 ms every half second) move p99 by 2-5x from
# one run to the next. This runs every server for a few seconds at each rate,
# round after round, in turn, and prints for each server and rate the median
# over the rounds of p50, p99 and p99.9 (of answered queries), of the p99 over
# every query sent (a lost one counted slower than any answer), the queries
# lost and the server's CPU per 100k answers. The first WARM seconds of each
# run are a warm-up, left out of the latencies and the lost count for every
# server alike: dnsperf has a start-up transient of its own (bench/dns/steady.awk).
#
# Servers: rbldnsd; rbldnsd with blowback's 4 MiB socket receive buffer
# (rbldnsd+buf, bench/dns/rcvbuf.py); and each blowback binary given (default:
# one built from this tree). Each pinned to CPU 0, dnsperf to CPU 1.
#
# Load generators (-g, default both, each server and rate run once with each):
#   dnsperf  dnsperf -v; latency as dnsperf's receiving thread saw it. At 50k
#            QPS it uses 80-98% of its core here, so its own queueing is in
#            every server's figures.
#   udpload  bench/dns/udpload: times each answer by the kernel's receive
#            timestamp and keeps its figures in memory (55-79% of its core at
#            50k QPS); the same queries, rate, warm-up and 2 s timeout.
#
# Usage: bench/dns/ab.sh [-n ENTRIES] [-r RATE[,RATE...]] [-l SECONDS] [-w WARM] [-k ROUNDS] [-g GEN[,GEN]] [NAME=BLOWBACK_BINARY...]
#   -w warm-up seconds before the measured -l seconds (default 1; 0 measures from the first query)
#   -s KB also runs each blowback binary with [dns_server] udp_rcvbuf_kb = KB, as
#      NAME+KBk: -s 64 gives it rbldnsd's receive buffer (like for like the other way)
# Prints the medians, the rounds in which each blowback beat rbldnsd, and a
# latency histogram of all rounds pooled.
set -euo pipefail
ENTRIES=1000000 RATES=30000,50000 LATDUR=5 ROUNDS=5 WARM=1 SMALLBUF= GENS=dnsperf,udpload
while getopts "n:r:l:k:w:s:g:" o; do
	case $o in
	n) ENTRIES=$OPTARG ;;
	r) RATES=$OPTARG ;;
	l) LATDUR=$OPTARG ;;
	k) ROUNDS=$OPTARG ;;
	w) WARM=$OPTARG ;;
	s) SMALLBUF=$OPTARG ;;
	g) GENS=$OPTARG ;;
	*) sed -n '2,32p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
IFS=, read -r -a RATE_LIST <<<"$RATES"
IFS=, read -r -a GEN_LIST <<<"$GENS"
for g in "${GEN_LIST[@]}"; do case $g in dnsperf | udpload) ;; *) echo "-g: dnsperf or udpload, not $g" >&2; exit 2 ;; esac; done
for t in rbldnsd dnsperf dig taskset python3; do command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "$t is needed (bench/dns/run.sh installs it)" >&2; exit 1; }; done
RBLDNSD=$(command -v rbldnsd || echo /usr/sbin/rbldnsd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/bench-ab.XXXXXX)
chmod 755 "$WORK"
SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$WORK"' EXIT
ZONE=bl.bench.test
HZ=$(getconf CLK_TCK)
declare -a NAMES BINS CFGS
if [ $# -eq 0 ]; then
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/blowback" ./cmd/blowback)
	set -- "blowback=$WORK/blowback"
fi
for nb in "$@"; do
	NAMES+=("${nb%%=*}") BINS+=("${nb#*=}") CFGS+=("")
	if [ -n "$SMALLBUF" ]; then
		printf '[dns_server]\nudp_rcvbuf_kb = %d\n' "$SMALLBUF" >"$WORK/rcvbuf.toml"
		NAMES+=("${nb%%=*}+${SMALLBUF}k") BINS+=("${nb#*=}") CFGS+=("$WORK/rcvbuf.toml")
	fi
done
(cd "$ROOT" && go build -o "$WORK/udpload" ./bench/dns/udpload)
(cd "$ROOT" && go run ./bench/dns/genzone -n "$ENTRIES" -zone $ZONE -out "$WORK/zone.rbldnsd" -queries "$WORK/queries.txt")
PROBE=$(grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' "$WORK/zone.rbldnsd" | tail -1 | awk -F. '{print $4"."$3"."$2"."$1}').$ZONE
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # server port
	case $1 in
	rbldnsd | rbldnsd+buf) taskset -c 0 "$RBLDNSD" -n -b "127.0.0.1/$2" -w "$WORK" "$ZONE:combined:zone.rbldnsd" >"$WORK/srv.log" 2>&1 & ;;
	*)
		local i
		for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$1" ] && break; done
		taskset -c 0 "${BINS[$i]}" dnsd --zone-file "$WORK/zone.rbldnsd" --zone $ZONE --dns "127.0.0.1:$2" ${CFGS[$i]:+--config "${CFGS[$i]}"} >"$WORK/srv.log" 2>&1 &
		;;
	esac
	SPID=$!
	for _ in $(seq 1 3000); do
		dig +tries=1 +time=1 +short @127.0.0.1 -p "$2" "$PROBE" A 2>/dev/null | grep -q '^127\.' && break
		sleep 0.01
	done
	if [ "$1" = rbldnsd+buf ]; then
		[ "$(python3 "$ROOT/bench/dns/rcvbuf.py" "$SPID" "$2" $((4 << 20)))" -ge 1 ] || { echo "could not set rbldnsd's receive buffer" >&2; exit 1; }
	fi
}
one() { # server rate gen -> appends "server rate p50 p99 p999 p99all lost cpu gen_cpu round gen" to results
	local port t0 t1 cl answered raw="$WORK/raw" lat="$WORK/lat"
	port=$(freeport)
	start "$1" "$port"
	t0=$(awk '{print $14+$15}' "/proc/$SPID/stat")
	# The load generator's own CPU, % of its run's wall time (its ticks, as
	# its waiting subshell's children's; lost queries make it wait for their
	# timeout): it shares one core between sending and receiving, and near
	# 100% its own queueing shows in every server's latencies.
	cl=$( (w0=$(date +%s%N)
		case $3 in
		dnsperf) taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$((LATDUR + WARM))" -Q "$2" -c 8 -q 2000 -t 2 -b 4096 -v >"$raw" 2>&1 || true ;;
		udpload) taskset -c 1 "$WORK/udpload" -p "$port" -d "$WORK/queries.txt" -l "$((LATDUR + WARM))" -w "$WARM" -Q "$2" -c "$(( $2 * 4 / 65536 + 1 > 4 ? $2 * 4 / 65536 + 1 : 4 ))" -t 2s -o "$lat.u" >"$raw" 2>&1 || true ;;
		esac
		awk -v w="$(($(date +%s%N) - w0))" -v hz="$HZ" '{printf "%.0f\n", ($16+$17)/hz/(w/1e9)*100}' "/proc/$BASHPID/stat"))
	t1=$(awk '{print $14+$15}' "/proc/$SPID/stat")
	kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
	case $3 in
	dnsperf)
		awk -v rate="$2" -v warm="$WARM" -v timeout=2 -v lostfile="$WORK/lost" -f "$ROOT/bench/dns/steady.awk" "$raw" | sort -n >"$lat"
		answered=$(grep -c '^> [^T]' "$raw" || true) ;;
	udpload)
		grep -q '^sent=' "$raw" || { cat "$raw" >&2; exit 1; }
		sort -n "$lat.u" >"$lat"
		tr ' ' '\n' <"$raw" | sed -n 's/^steady_lost=//p' >"$WORK/lost"
		answered=$(tr ' ' '\n' <"$raw" | sed -n 's/^answered=//p') ;;
	esac
	awk -v s="$1" -v r="$2" -v d="$((t1 - t0))" -v hz="$HZ" -v lost="$(cat "$WORK/lost")" -v answered="$answered" -v cl="$cl" -v round="$round" -v gen="$3" '{a[NR]=$1} END{
		all = NR + lost; k = int(all*0.99); p99all = (k > NR) ? 1e9 : a[k > 0 ? k : 1]*1000
		printf "%s %s %.3f %.3f %.3f %.3f %d %.3f %.0f %d %s\n", s, r, a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[int(NR*0.999)]*1000, p99all, lost, d/hz/answered*100000, cl, round, gen }' "$lat" | tee -a "$WORK/results" >&2
	awk -v s="$1" -v r="$2" -v g="$3" -v b="$BUCKETS" 'BEGIN{ nb=split(b, ub, " ") } { ms=$1*1000; for (i=1; i<=nb && ms>ub[i]; i++); c[i]++ }
		END{ printf "%s %s %s", s, r, g; for (i=1; i<=nb+1; i++) printf " %d", c[i]; printf "\n" }' "$lat" >>"$WORK/hist"
}
BUCKETS="0.05 0.1 0.25 0.5 1 2 5 10 50" # ms, the latency histogram's upper bounds
SERVERS=(rbldnsd rbldnsd+buf "${NAMES[@]}")
for round in $(seq 1 "$ROUNDS"); do
	echo "== round $round of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
	for RATE in "${RATE_LIST[@]}"; do
		for g in "${GEN_LIST[@]}"; do
			for s in "${SERVERS[@]}"; do one "$s" "$RATE" "$g"; done
		done
	done
done
echo "$ENTRIES-entry zone, $ROUNDS rounds of ${WARM} s warm-up + ${LATDUR} s measured per server and rate, interleaved; medians over the rounds (min-max in brackets for p99); load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/results" "$WORK/hist" "$BUCKETS" "${SERVERS[@]}" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
hist = [l.split() for l in open(sys.argv[2])]
ub = sys.argv[3].split()
order = sys.argv[4:]
rates = sorted({int(r[1]) for r in rows})
gens = list(dict.fromkeys(r[10] for r in rows))
for gen in gens:
    print(f"\n-- load generator: {gen}")
    print(f"{'server':<14} {'QPS':>6} {'p50_ms':>7} {'p99_ms (min-max)':>22} {'p999_ms':>8} {'p99_all_sent_ms':>16} {'lost':>7} {'cpu/100k':>9} {gen + '_cpu':>11}")
    for rate in rates:
        for s in order:
            rs = [r for r in rows if r[0] == s and int(r[1]) == rate and r[10] == gen]
            if not rs: continue
            col = lambda i: [float(r[i]) for r in rs]
            med = lambda i: st.median(col(i))
            p99all = med(5)
            p99a = "lost" if p99all >= 1e9 else f"{p99all:.3f}"
            print(f"{s:<14} {rate:>6} {med(2):>7.3f} {med(3):>8.3f} ({min(col(3)):.2f}-{max(col(3)):.2f}) {med(4):>8.3f} {p99a:>16} {int(med(6)):>7} {med(7):>9.3f} {med(8):>10.0f}%")
    # Rounds are paired: the servers of one round ran back to back, so a
    # round where the machine was worse tends to be worse for all of them.
    print("rounds in which each server's p99 was below rbldnsd's (answered) / rbldnsd+buf's:")
    for rate in rates:
        for s in order[2:]:
            byr = lambda name: {r[9]: float(r[3]) for r in rows if r[0] == name and int(r[1]) == rate and r[10] == gen}
            mine, rb, rbb = byr(s), byr("rbldnsd"), byr("rbldnsd+buf")
            k = sorted(set(mine) & set(rb) & set(rbb))
            print(f"  {s} at {rate} QPS: {sum(mine[i] < rb[i] for i in k)} / {sum(mine[i] < rbb[i] for i in k)} of {len(k)}")
    print("latency histogram, all rounds pooled (share of answers per bucket):")
    cols = [(s, rate) for rate in rates for s in order]
    tot = {c: [0] * (len(ub) + 1) for c in cols}
    for r in hist:
        c = (r[0], int(r[1]))
        if c in tot and r[2] == gen:
            tot[c] = [a + int(b) for a, b in zip(tot[c], r[3:])]
    print("  " + " " * 10 + "".join(f" {s[:11] + '@' + str(rate // 1000) + 'k':>15}" for s, rate in cols))
    for i in range(len(ub) + 1):
        lab = f"<= {ub[i]} ms" if i < len(ub) else f"> {ub[-1]} ms"
        print(f"  {lab:<10}" + "".join(f" {100 * tot[c][i] / max(sum(tot[c]), 1):>14.3f}%" for c in cols))
PY
