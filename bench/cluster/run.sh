#!/bin/bash
# The replicated-log scenario (docs/scaling.md, CONTRACT.md): a 3-node NATS
# JetStream cluster (real nats-server processes, stream R3), two central
# replicas (`blowback run` with [cluster]) and two trap nodes (`blowback
# trap` with [cluster]), all on 127.0.0.0/8. N bounces, each from its own
# source address, go through the traps; partway one NATS server, one replica
# and one trap are killed with SIGKILL and restarted. Then: every address
# that got a 250 must have exactly one event on both replicas, and the
# replicas must answer the same SOA serial and byte-identical exports.
#
#   bench/cluster/run.sh                 # N=3000
#   N=20000 RAW=0 bench/cluster/run.sh   # RAW=0: traps keep no raw message
#   SYNC=interval bench/cluster/run.sh   # JetStream's default: fsync every 2 min, ack before it
#   KILL=0 bench/cluster/run.sh          # no kills (throughput only)
#
# nats-server: the Debian package (v2.9) predates stream metadata (2.10), so
# the server is built from the module version go.mod names, unless
# NATS_SERVER points at one. Last line:
# cluster: acked=A applied_r1=B applied_r2=C duplicates=D lost=L serials_equal=yes|no exports_equal=yes|no events_per_s=E
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-3000} C=${C:-16} RAW=${RAW:-65536} SYNC=${SYNC:-always} KILL=${KILL:-1}
work=$(mktemp -d /tmp/blowback-cluster.XXXXXX)
declare -A pids
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
log() { echo "$(date +%T) $*" >&2; }

go build -o "$work/blowback" ./cmd/blowback
go build -o "$work/send" ./bench/cluster/send
go build -o "$work/check" ./bench/cluster/check
nats=${NATS_SERVER:-}
if [ -z "$nats" ]; then
	go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
	nats=$work/nats-server
fi
ports=($(python3 - <<'EOF'
import socket
ss=[]
for _ in range(8):
    s=socket.socket(); s.bind(("127.0.0.1",0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
))
client=(${ports[0]} ${ports[1]} ${ports[2]}) route=(${ports[3]} ${ports[4]} ${ports[5]}) smtp=(${ports[6]} ${ports[7]})
routes="nats://127.0.0.1:${route[0]}, nats://127.0.0.1:${route[1]}, nats://127.0.0.1:${route[2]}"
sync=""
[ "$SYNC" = always ] && sync=", sync_interval: always"
for i in 0 1 2; do
	cat > "$work/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${client[$i]}
jetstream { store_dir: "$work/n$i" $sync }
cluster { name: blowback, listen: 127.0.0.1:${route[$i]}, routes: [ $routes ] }
EOF
done
start_nats() { "$nats" -c "$work/n$1.conf" >> "$work/n$1.log" 2>&1 & pids[n$1]=$!; }
for i in 0 1 2; do start_nats $i; done
sleep 0.5
for i in 0 1 2; do kill -0 "${pids[n$i]}" 2>/dev/null || { echo "nats-server n$i did not start:" >&2; cat "$work/n$i.log" >&2; exit 1; }; done

urls="\"nats://127.0.0.1:${client[0]}\", \"nats://127.0.0.1:${client[1]}\", \"nats://127.0.0.1:${client[2]}\""
token=bench-admin-token-0123456789abcdef
for r in r1 r2; do
	cat > "$work/$r.toml" <<EOF
admin_tokens = ["$token"]
[cluster]
urls = [$urls]
name = "$r"
tick = "1m"
EOF
done
for t in t1 t2; do
	cat > "$work/$t.toml" <<EOF
[trap]
connection_rate_per_ip = 0
max_connections = 2000
[forward]
raw_max = $RAW
[cluster]
urls = [$urls]
EOF
done
"$work/blowback" cluster init --config "$work/r1.toml" >&2

# wait_line FILE COUNT: until FILE has COUNT "blowback running" lines.
wait_line() {
	for _ in $(seq 600); do
		[ "$(grep -c 'blowback running' "$1" 2>/dev/null || true)" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "no start in $1:" >&2; tail -20 "$1" >&2; exit 1
}
start_replica() {
	"$work/blowback" run --config "$work/$1.toml" --data "$work/$1" --smtp 127.0.0.1:0 --dns 127.0.0.1:0 \
		--http 127.0.0.1:0 >> "$work/$1.log" 2>&1 &
	pids[$1]=$!
}
start_trap() { # name index
	"$work/blowback" trap --config "$work/$1.toml" --data "$work/$1" --node "trap$2" --smtp "127.0.0.1:${smtp[$2]}" \
		--http 127.0.0.1:0 >> "$work/$1.log" 2>&1 &
	pids[$1]=$!
}
status() { "$work/blowback" cluster status --config "$work/r1.toml" || true; }
start_replica r1; start_replica r2; start_trap t1 0; start_trap t2 1
wait_line "$work/r1.log" 1; wait_line "$work/r2.log" 1; wait_line "$work/t1.log" 1; wait_line "$work/t2.log" 1
field() { grep -o "$2=[0-9.:]*" "$work/$1.log" | tail -1 | cut -d= -f2; }
metric() { curl -s "http://$(field "$1" http)/metrics" | awk -v m="$2" '$1==m {printf "%d", $2}'; }

log "sending $N bounces through 2 traps (raw_max=$RAW, sync=${SYNC:-default})"
t0=$(date +%s.%N)
"$work/send" -n "$N" -c "$C" -traps "127.0.0.1:${smtp[0]},127.0.0.1:${smtp[1]}" -acked "$work/acked.txt" > "$work/send.out" &
sender=$!
acked() { if [ -f "$work/acked.txt" ]; then wc -l < "$work/acked.txt"; else echo 0; fi; }
if [ "$KILL" = 1 ]; then
	while [ "$(acked)" -lt $((N / 4)) ] && kill -0 $sender 2>/dev/null; do sleep 0.1; done
	# Kill the stream's leader: the harder case (a new leader is elected).
	leader=$(status | sed -n 's/.* leader \(n[0-9]\),.*/\1/p'); leader=${leader:-n1}
	log "kill -9 NATS server $leader (the stream leader) at $(acked) acked"
	kill -9 "${pids[$leader]}"; tf0=$(date +%s.%N)
	( # failover as the traps see it: the first batch the stream acknowledges
	  # after the kill (trap t2, never killed, sends all along)
		for _ in $(seq 600); do
			v=$(curl -s "http://$(field t2 http)/metrics" | awk '$1=="blowback_cluster_last_sent_timestamp_seconds" {printf "%.3f", $2}')
			if [ -n "$v" ] && awk -v v="$v" -v t="$tf0" 'BEGIN{exit !(v > t)}'; then
				log "failover: first acknowledgement $(awk -v v="$v" -v t="$tf0" 'BEGIN{printf "%.1f", v-t}')s after the kill of the stream leader"
				break
			fi
			sleep 0.1
		done
	) &
	failover_pid=$!
	while [ "$(acked)" -lt $((N / 2)) ] && kill -0 $sender 2>/dev/null; do sleep 0.1; done
	log "kill -9 replica r2 and trap t1 at $(acked) acked"
	kill -9 "${pids[r2]}" "${pids[t1]}"
	sleep 1
	start_nats "${leader#n}"; start_trap t1 0
	wait_line "$work/t1.log" 2
	log "restarted $leader and t1"
	while [ "$(acked)" -lt $((3 * N / 4)) ] && kill -0 $sender 2>/dev/null; do sleep 0.1; done
	start_replica r2; wait_line "$work/r2.log" 2
	log "restarted r2 at $(acked) acked"
fi
wait $sender
cat "$work/send.out" >&2
A=$(acked)

last() { status | sed -n 's/.* last \([0-9]*\),.*/\1/p'; }
log "waiting for the traps' spools to drain and both replicas to apply the whole stream"
caught=""
for _ in $(seq 1200); do
	b1=$(metric t1 blowback_cluster_backlog_events) b2=$(metric t2 blowback_cluster_backlog_events)
	l=$(last) a1=$(metric r1 blowback_cluster_applied_sequence) a2=$(metric r2 blowback_cluster_applied_sequence)
	if [ "$b1" = 0 ] && [ "$b2" = 0 ] && [ -n "$l" ] && [ "$a1" = "$l" ] && [ "$a2" = "$l" ]; then caught=1; break; fi
	sleep 0.25
done
t1=$(date +%s.%N)
[ -n "$caught" ] || log "replicas did not catch up: backlog $b1 $b2, stream $l, applied $a1 $a2"
status >&2

serial() { local a; a=$(field "$1" dns); dig +short +time=2 +tries=1 @127.0.0.1 -p "${a##*:}" bl.blowback.test SOA | awk '{print $3}' || true; }
export_of() { curl -sf -H "Authorization: Bearer $token" "http://$(field "$1" http)/api/v1/admin/zone?format=rbldnsd" | grep -v '^# generated'; }
se=no ee=no
for _ in 1 2 3 4 5; do # a clock tick may land between two reads: read again
	s1=$(serial r1) s2=$(serial r2)
	export_of r1 > "$work/r1.rbldnsd"; export_of r2 > "$work/r2.rbldnsd"
	[ -n "$s1" ] && [ "$s1" = "$s2" ] && se=yes || se=no
	cmp -s "$work/r1.rbldnsd" "$work/r2.rbldnsd" && [ -s "$work/r1.rbldnsd" ] && ee=yes || ee=no
	[ $se = yes ] && [ $ee = yes ] && break
	sleep 1
done
log "serials $s1 $s2; exports $(wc -c < "$work/r1.rbldnsd") and $(wc -c < "$work/r2.rbldnsd") bytes, $(grep -c '^127\.' "$work/r1.rbldnsd") listed"

if [ -n "${CATCHUP:-}" ]; then # a new replica from an empty disk
	sed 's/name = "r1"/name = "r3"/' "$work/r1.toml" > "$work/r3.toml"
	tc0=$(date +%s.%N); start_replica r3; wait_line "$work/r3.log" 1
	for _ in $(seq 6000); do [ "$(metric r3 blowback_cluster_applied_sequence)" = "$(last)" ] && break; sleep 0.1; done
	log "new replica r3 applied $(last) messages in $(awk -v t0="$tc0" -v t1="$(date +%s.%N)" 'BEGIN{printf "%.1f", t1-t0}')s (start included)"
	kill -TERM "${pids[r3]}"
fi
for r in r1 r2; do kill -TERM "${pids[$r]}"; done
for r in r1 r2; do wait "${pids[$r]}" 2>/dev/null || true; unset "pids[$r]"; done
c1=$("$work/check" -acked "$work/acked.txt" -store "$work/r1/store")
c2=$("$work/check" -acked "$work/acked.txt" -store "$work/r2/store")
log "r1: $c1"; log "r2: $c2"
get() { echo "$1" | grep -o "$2=[0-9]*" | cut -d= -f2; }
B=$(get "$c1" applied) Cc=$(get "$c2" applied)
L=$(( $(get "$c1" lost) > $(get "$c2" lost) ? $(get "$c1" lost) : $(get "$c2" lost) ))
D=$(( $(get "$c1" duplicates) > $(get "$c2" duplicates) ? $(get "$c1" duplicates) : $(get "$c2" duplicates) ))
E=$(awk -v a="$A" -v t0="$t0" -v t1="$t1" 'BEGIN{printf "%.0f", a/(t1-t0)}')
[ -z "${failover_pid:-}" ] || wait "$failover_pid" 2>/dev/null || true
echo "cluster: acked=$A applied_r1=$B applied_r2=$Cc duplicates=$D lost=$L serials_equal=$se exports_equal=$ee events_per_s=$E"
[ "$L" = 0 ] && [ "$D" = 0 ] && [ $se = yes ] && [ $ee = yes ]
