#!/usr/bin/env bash
# bench/dns/run.sh: blowback dnsd against rbldnsd on the same 1M-entry zone.
#
# Builds one rbldnsd-format file (what `blowback export --format rbldnsd`
# writes, via bench/dns/genzone) and a dnsperf query file (50% listed, 50%
# unlisted), then, one server after the other, measures:
#   load time     start until the first answer (and what the server logs)
#   QPS           dnsperf flat out for DURATION seconds
#   CPU/100k      server utime+stime (/proc/PID/stat) per 100k answered queries
#   p99 @ RATE    p50/p99/p99.9 latency at each fixed rate (dnsperf -Q RATE -v),
#                 and the latency histogram of those runs
#   CPU/100k @ RATE  server CPU per 100k answered at the fixed rate
#   RSS           VmRSS (and its anonymous part) after loading and after the runs
#   reload        blowback only: the zone file replaced twice under RELOAD_QPS;
#                 queries lost and latency against the same run without reloads
# and prints the table with blowback/rbldnsd ratios.
#
# Servers are pinned to CPU 0 and dnsperf to CPU 1 when there are two CPUs or
# more, so both servers get the same one core.
#
# Usage: bench/dns/run.sh [-n ENTRIES] [-d SECONDS] [-r RATE[,RATE...]] [-l SECONDS] [-R RELOAD_QPS] [-S] [-H] [-k]
#   -r fixed rates for the latency runs (default 30000,50000), -l their length (default 10)
#   -w warm-up seconds before each latency run's measured -l seconds (default 1):
#      left out of the latencies and lost counts of both servers, because
#      dnsperf has a start-up transient of its own (bench/dns/steady.awk)
#   -S skips the reload runs
#   -H runs a busy loop on the server's CPU during the reload runs (contention)
#   -B gives rbldnsd blowback's 4 MiB socket receive buffer (bench/dns/rcvbuf.py, root):
#      like for like, queries wait in both servers' buffers instead of being dropped
#   -k keeps the work directory. Environment: QTYPE=A|TXT|mix (default A),
#   BLOWBACK_ENV: environment for blowback (e.g. "GOGC=off" to look at the GC's share),
#   BLOWBACK_BIN: a blowback binary to measure instead of building this tree's.
#
# Lost queries: a server whose socket buffer overflows drops queries, and
# dnsperf's percentiles are over the answered ones only, so a server that
# drops its slowest queries looks faster. Each fixed-rate run therefore also
# prints the queries lost (and the drops the server's socket counted) and a
# p99 over every query sent, a lost one counted as slower than any answer
# ("lost" when the 99th percentile is a lost query).
set -euo pipefail

ENTRIES=1000000
DURATION=15
RATES=30000,50000
LATDUR=10
WARM=1
RELOAD_QPS=100000
KEEP=0
HOG=0
SKIPRELOAD=0
SAMEBUF=0
while getopts "n:d:r:l:w:R:SHBk" o; do
	case $o in
	n) ENTRIES=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	r) RATES=$OPTARG ;;
	l) LATDUR=$OPTARG ;;
	w) WARM=$OPTARG ;;
	R) RELOAD_QPS=$OPTARG ;;
	S) SKIPRELOAD=1 ;;
	k) KEEP=1 ;;
	H) HOG=1 ;;
	B) SAMEBUF=1 ;;
	*) sed -n '2,39p' "$0"; exit 2 ;;
	esac
done
IFS=, read -r -a RATE_LIST <<<"$RATES"
QTYPE=${QTYPE:-A}

need() { # tool:package...
	local missing=()
	for tp in "$@"; do
		t=${tp%%:*}
		command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing+=("${tp#*:}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing ${missing[*]}" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}
need rbldnsd:rbldnsd dnsperf:dnsperf dig:dnsutils taskset:util-linux python3:python3 curl:curl
command -v go >/dev/null || { echo "go is needed" >&2; exit 1; }
RBLDNSD=$(command -v rbldnsd || echo /usr/sbin/rbldnsd)

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/bench-dns.XXXXXX)
chmod 755 "$WORK" # rbldnsd run as root drops to its own user
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	[ "$KEEP" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

ZONE=bl.bench.test
NCPU=$(nproc)
SRV_PIN=() PERF_PIN=()
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
	SRV_PIN=(taskset -c 0) PERF_PIN=(taskset -c 1)
fi
HZ=$(getconf CLK_TCK)

freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} END{printf "%.1f/%.1f", r/1024, a/1024}' "/proc/$1/status"; }
waitanswer() { # port -> seconds from start until the last entry of the file is answered
	local t0 t1
	t0=$(date +%s.%N)
	for _ in $(seq 1 3000); do
		if dig +tries=1 +time=1 +short @127.0.0.1 -p "$1" "$PROBE" A 2>/dev/null | grep -q '^127\.'; then
			t1=$(date +%s.%N)
			echo "$t0 $t1" | awk '{printf "%.2f", $2-$1}'
			return
		fi
		sleep 0.01
	done
	echo "server on port $1 never answered" >&2
	exit 1
}

echo "== building blowback and the zone ($ENTRIES entries)" >&2
# Built as deploy/Containerfile ships it.
if [ -n "${BLOWBACK_BIN:-}" ]; then cp "$BLOWBACK_BIN" "$WORK/blowback"; fi
(cd "$ROOT" && { [ -n "${BLOWBACK_BIN:-}" ] || CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/blowback" ./cmd/blowback; } && go run ./bench/dns/genzone -n "$ENTRIES" -zone $ZONE \
	-out "$WORK/zone.rbldnsd" -queries "$WORK/queries.txt" -qtype "$QTYPE")
ls -l "$WORK/zone.rbldnsd" >&2
# The last IPv4 entry of the file: answered only once all of it is loaded.
PROBE=$(grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' "$WORK/zone.rbldnsd" | tail -1 | awk -F. '{print $4"."$3"."$2"."$1}').$ZONE

declare -A R
perf() { # name port -> fills R[name,qps] R[name,cpu] R[name,lost]
	local name=$1 port=$2 pid=$3 out t0 t1
	t0=$(cputicks "$pid")
	out=$("${PERF_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$DURATION" -c 8 -q 1000 -t 2 -b 4096 2>&1)
	t1=$(cputicks "$pid")
	local done qps
	done=$(echo "$out" | awk '/Queries completed:/{print $3}')
	qps=$(echo "$out" | awk '/Queries per second:/{print $4}')
	R[$name,qps]=$(printf "%.0f" "$qps")
	R[$name,lost]=$(echo "$out" | awk '/Queries lost:/{print $3}')
	R[$name,cpu]=$(awk -v d="$((t1 - t0))" -v hz="$HZ" -v n="$done" 'BEGIN{printf "%.3f", d/hz/n*100000}')
	R[$name,util]=$(awk -v d="$((t1 - t0))" -v hz="$HZ" -v s="$DURATION" 'BEGIN{printf "%.0f%%", d/hz/s*100}')
}
sockdrops() { # port -> datagrams the kernel dropped on that UDP socket (/proc/net/udp)
	awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" {d+=$NF} END{print d+0}' /proc/net/udp
}
p99() { # port rate seconds pid name -> "p50 p99 p999 max cpu-s-per-100k lost drops p99-of-all-sent"; latencies kept in lat.NAME.RATE
	local t0 t1 d0 d1 lat="$WORK/lat.$5.$2" raw="$WORK/dnsperf.$5.$2"
	t0=$(cputicks "$4")
	d0=$(sockdrops "$1")
	"${PERF_PIN[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$(($3 + WARM))" -Q "$2" -c 8 -q 2000 -t 2 -b 4096 -v >"$raw" 2>&1 || true
	t1=$(cputicks "$4")
	d1=$(sockdrops "$1")
	awk -v rate="$2" -v warm="$WARM" -v timeout=2 -v lostfile="$raw.lost" -f "$ROOT/bench/dns/steady.awk" "$raw" | sort -n >"$lat"
	awk -v d="$((t1 - t0))" -v hz="$HZ" -v lost="$(cat "$raw.lost")" -v drops="$((d1 - d0))" -v answered="$(grep -c '^> [^T]' "$raw")" '{a[NR]=$1} END{ if (NR==0) {print "- - - - - - - -"; exit}
		all = NR + lost; k = int(all*0.99); p99all = (k > NR) ? "lost" : sprintf("%.3f", a[k > 0 ? k : 1]*1000)
		printf "%.3f %.3f %.3f %.3f %.3f %d %d %s\n", a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[int(NR*0.999)]*1000, a[NR]*1000, d/hz/answered*100000, lost, drops, p99all }' "$lat"
}
hist() { # latency files... -> one line per bucket: share of answers (%) in each file
	awk 'BEGIN{ nb=split("0.05 0.1 0.25 0.5 1 2 5 10 50", ub, " ") }
	FNR==1{ f++ }
	{ ms=$1*1000; for (i=1; i<=nb && ms>ub[i]; i++); c[f,i]++; n[f]++ }
	END{ for (i=1; i<=nb+1; i++) {
		lab = (i<=nb) ? sprintf("<= %s ms", ub[i]) : sprintf("> %s ms", ub[nb])
		printf "  %-14s", lab
		for (j=1; j<=f; j++) printf " %9.3f%%", (n[j] ? 100*c[j,i]/n[j] : 0)
		printf "\n" } }' "$@"
}

run_server() { # name port cmd... ; leaves PID in SPID
	local name=$1 port=$2
	shift 2
	"${SRV_PIN[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	R[$name,load]=$(waitanswer "$port")
	sleep 0.5
	R[$name,rss0]=$(rss "$SPID")
}

echo "== rbldnsd" >&2
PORT=$(freeport)
run_server rbldnsd "$PORT" "$RBLDNSD" -n -b "127.0.0.1/$PORT" -w "$WORK" "$ZONE:combined:zone.rbldnsd"
RB=$SPID
if [ "$SAMEBUF" = 1 ]; then
	# rbldnsd sets its own 128 KiB receive buffer; blowback asks for 4 MiB.
	[ "$(python3 "$ROOT/bench/dns/rcvbuf.py" "$RB" "$PORT" $((4 << 20)))" -ge 1 ] || { echo "could not set rbldnsd's receive buffer" >&2; exit 1; }
fi
R[rbldnsd,loadlog]=$(awk '/zones reloaded/{print $5}' "$WORK/rbldnsd.log" | sed 's/e.*//')
perf rbldnsd "$PORT" "$RB"
for RATE in "${RATE_LIST[@]}"; do
	read -r R[rbldnsd,p50,$RATE] R[rbldnsd,p99,$RATE] R[rbldnsd,p999,$RATE] R[rbldnsd,max,$RATE] R[rbldnsd,cpur,$RATE] R[rbldnsd,lost,$RATE] R[rbldnsd,drops,$RATE] R[rbldnsd,p99all,$RATE] < <(p99 "$PORT" "$RATE" "$LATDUR" "$RB" rbldnsd)
done
R[rbldnsd,rss1]=$(rss "$RB")
kill "$RB"; wait "$RB" 2>/dev/null || true

echo "== blowback dnsd" >&2
PORT=$(freeport)
run_server blowback "$PORT" env ${BLOWBACK_ENV:-} "$WORK/blowback" dnsd --zone-file "$WORK/zone.rbldnsd" --zone $ZONE --dns "127.0.0.1:$PORT" --poll 500ms --metrics 127.0.0.1:0
BB=$SPID
MADDR=$(sed -n 's/.*msg="metrics listening".*addr=\([0-9.:]*\).*/\1/p' "$WORK/blowback.log" | head -1)
scrape() { curl -s "http://$MADDR/metrics" | awk '/^blowback_dns_(udp_queue_delay|request_duration)_seconds_bucket/ || /^go_gc_duration_seconds_count/'; }
# where a run's latency went, from the server's own histograms (differences
# of two scrapes): p99 upper bound of the time queries waited in the socket
# buffer (kernel receive timestamp to read), the same for a batch's answering
# time, and the GC cycles in between.
inside() { # before after -> "wait_p99 answer_p99 gcs"
	awk 'function q(name,   i,n,tot,b) { n=0; for (k in A) if (index(k, name)==1) { split(k, p, "\""); n++; le[n]=p[2]+0; c[n]=A[k] }
		# sort by le
		for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (le[j]<le[i]) { t=le[i]; le[i]=le[j]; le[j]=t; t=c[i]; c[i]=c[j]; c[j]=t }
		tot=c[n]; if (tot<=0) return "-"
		for (i=1;i<=n;i++) if (c[i] >= 0.99*tot) return (le[i] >= 1e308 ? ">100" : le[i]*1000)
		return "-" }
	FNR==NR { B[$1]=$2; next } { A[$1]=$2-B[$1] }
	END { printf "%s %s %d\n", q("blowback_dns_udp_queue_delay_seconds_bucket"), q("blowback_dns_request_duration_seconds_bucket"), A["go_gc_duration_seconds_count"] }' "$1" "$2"
}
R[blowback,loadlog]=$(sed -n 's/.*msg="zone loaded".*took=\([0-9.]*m\?s\).*/\1/p' "$WORK/blowback.log" | head -1)
perf blowback "$PORT" "$BB"
for RATE in "${RATE_LIST[@]}"; do
	scrape >"$WORK/m0"
	read -r R[blowback,p50,$RATE] R[blowback,p99,$RATE] R[blowback,p999,$RATE] R[blowback,max,$RATE] R[blowback,cpur,$RATE] R[blowback,lost,$RATE] R[blowback,drops,$RATE] R[blowback,p99all,$RATE] < <(p99 "$PORT" "$RATE" "$LATDUR" "$BB" blowback)
	scrape >"$WORK/m1"
	read -r R[in,wait,$RATE] R[in,answer,$RATE] R[in,gc,$RATE] < <(inside "$WORK/m0" "$WORK/m1")
done
R[blowback,rss1]=$(rss "$BB")

[ "$SKIPRELOAD" = 0 ] && echo "== blowback reload under $RELOAD_QPS QPS" >&2
reload_run() { # with_reload -> "lost completed p99 max"
	local out
	out=$(mktemp "$WORK/reload.XXXX")
	"${PERF_PIN[@]}" dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -l 10 -Q "$RELOAD_QPS" -c 8 -q 5000 -t 2 -b 4096 -v >"$out" 2>&1 &
	local dp=$!
	if [ "$HOG" = 1 ]; then
		"${SRV_PIN[@]}" timeout 11 sh -c 'while :; do :; done' &
	fi
	if [ "$1" = 1 ]; then
		for i in 1 2; do
			sleep 3
			# A new serial, the same entries: written aside and renamed over.
			sed "s/^\(\$SOA [^ ]* [^ ]* [^ ]*\) [0-9]*/\1 $((2026112701 + i))/" "$WORK/zone.rbldnsd" >"$WORK/zone.new"
			mv "$WORK/zone.new" "$WORK/zone.rbldnsd"
		done
	fi
	wait "$dp" || true
	local lost done
	lost=$(awk '/Queries lost:/{print $3}' "$out")
	done=$(awk '/Queries completed:/{print $3}' "$out")
	echo "$lost $done $(awk '/^> /{ if ($2!="T") print $NF }' "$out" | sort -n | awk '{a[NR]=$1} END{printf "%.3f %.3f", a[int(NR*0.99)]*1000, a[NR]*1000}')"
}
if [ "$SKIPRELOAD" = 0 ]; then
read -r R[base,lost] R[base,done] R[base,p99] R[base,max] < <(reload_run 0)
read -r R[reload,lost] R[reload,done] R[reload,p99] R[reload,max] < <(reload_run 1)
fi
R[reload,count]=$(grep -c 'msg="zone loaded"' "$WORK/blowback.log" || true)
R[reload,took]=$(sed -n 's/.*msg="zone loaded".*took=\([0-9.]*m\?s\).*/\1/p' "$WORK/blowback.log" | tail -n +2 | tr '\n' ' ')
kill "$BB"; wait "$BB" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "-"; else printf "%.2f", a/b }'; }
first() { echo "${1%%/*}"; }
echo
echo "blowback dnsd vs rbldnsd: $ENTRIES-entry zone, $(wc -l <"$WORK/queries.txt") queries ($QTYPE, 50% listed), $(nproc) CPUs, pinned: ${SRV_PIN[*]:-no}"
[ "$SAMEBUF" = 1 ] && echo "rbldnsd ran with a $((4 << 20))-byte socket receive buffer (-B), as blowback's"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-34s %14s %14s %8s\n" "" rbldnsd blowback ratio
printf "%-34s %14s %14s %8s\n" "QPS (dnsperf flat out, ${DURATION}s)" "${R[rbldnsd,qps]}" "${R[blowback,qps]}" "$(ratio "${R[blowback,qps]}" "${R[rbldnsd,qps]}")"
printf "%-34s %14s %14s %8s\n" "  server CPU use during it" "${R[rbldnsd,util]}" "${R[blowback,util]}" ""
printf "%-34s %14s %14s %8s\n" "CPU s per 100k answered" "${R[rbldnsd,cpu]}" "${R[blowback,cpu]}" "$(ratio "${R[blowback,cpu]}" "${R[rbldnsd,cpu]}")"
for RATE in "${RATE_LIST[@]}"; do
	for q in p50 p99 p999 max; do
		printf "%-34s %14s %14s %8s\n" "$q ms at $RATE QPS" "${R[rbldnsd,$q,$RATE]}" "${R[blowback,$q,$RATE]}" "$(ratio "${R[blowback,$q,$RATE]}" "${R[rbldnsd,$q,$RATE]}")"
	done
	printf "%-34s %14s %14s %8s\n" "CPU s per 100k at $RATE QPS" "${R[rbldnsd,cpur,$RATE]}" "${R[blowback,cpur,$RATE]}" "$(ratio "${R[blowback,cpur,$RATE]}" "${R[rbldnsd,cpur,$RATE]}")"
	printf "%-34s %14s %14s\n" "lost at $RATE QPS (socket drops*)" "${R[rbldnsd,lost,$RATE]} (${R[rbldnsd,drops,$RATE]})" "${R[blowback,lost,$RATE]} (${R[blowback,drops,$RATE]})"
	printf "%-34s %14s %14s %8s\n" "p99 ms at $RATE, lost counted" "${R[rbldnsd,p99all,$RATE]}" "${R[blowback,p99all,$RATE]}" "$(ratio "${R[blowback,p99all,$RATE]}" "${R[rbldnsd,p99all,$RATE]}")"
done
echo "(fixed-rate latencies and lost queries: the ${LATDUR} s after a ${WARM} s warm-up; *socket drops and CPU: the whole run)"
printf "%-34s %14s %14s %8s\n" "RSS MB after load (total/anon)" "${R[rbldnsd,rss0]}" "${R[blowback,rss0]}" "$(ratio "$(first "${R[blowback,rss0]}")" "$(first "${R[rbldnsd,rss0]}")")"
printf "%-34s %14s %14s %8s\n" "RSS MB after the runs" "${R[rbldnsd,rss1]}" "${R[blowback,rss1]}" "$(ratio "$(first "${R[blowback,rss1]}")" "$(first "${R[rbldnsd,rss1]}")")"
printf "%-34s %14s %14s %8s\n" "load: start to first answer, s" "${R[rbldnsd,load]}" "${R[blowback,load]}" "$(ratio "${R[blowback,load]}" "${R[rbldnsd,load]}")"
printf "%-34s %14s %14s %8s\n" "load: as the server logs it" "${R[rbldnsd,loadlog]}s" "${R[blowback,loadlog]}" ""
printf "%-34s %14s %14s\n" "lost in the flat-out run" "${R[rbldnsd,lost]}" "${R[blowback,lost]}"
echo
echo "latency histogram (share of answers per bucket):"
printf "  %-14s" ""
for RATE in "${RATE_LIST[@]}"; do printf " %10s %10s" "rbl@$RATE" "bb@$RATE"; done
echo
HF=()
for RATE in "${RATE_LIST[@]}"; do HF+=("$WORK/lat.rbldnsd.$RATE" "$WORK/lat.blowback.$RATE"); done
hist "${HF[@]}"
echo
echo "blowback from the inside (its own histograms, bucket upper bounds):"
for RATE in "${RATE_LIST[@]}"; do
	printf "  at %s QPS: p99 <= %s ms waiting in the socket buffer for the server to read, p99 <= %s ms answering a batch, %s GC cycles (client p99 %s ms)\n" \
		"$RATE" "${R[in,wait,$RATE]}" "${R[in,answer,$RATE]}" "${R[in,gc,$RATE]}" "${R[blowback,p99,$RATE]}"
done
[ "$SKIPRELOAD" = 1 ] && exit 0
echo
[ "$HOG" = 1 ] && echo "(with a busy loop on the server's CPU during both runs)"
echo "blowback reload under $RELOAD_QPS QPS (10 s each; zone file replaced twice in the second run; loads took: ${R[reload,took]:-?}):"
printf "  %-22s lost %s of %s, p99 %s ms, max %s ms\n" "without reload" "${R[base,lost]}" "$((${R[base,done]:-0} + ${R[base,lost]:-0}))" "${R[base,p99]}" "${R[base,max]}"
printf "  %-22s lost %s of %s, p99 %s ms, max %s ms\n" "with 2 reloads" "${R[reload,lost]}" "$((${R[reload,done]:-0} + ${R[reload,lost]:-0}))" "${R[reload,p99]}" "${R[reload,max]}"
