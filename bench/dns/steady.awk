# bench/dns/steady.awk: the steady part of a fixed-rate `dnsperf -v` run.
#
# dnsperf has a start-up transient of its own: for its first -q queries it
# yields after every other send, which puts it behind its rate schedule; it
# then sends the backlog back to back on the one core it shares with its
# receiving thread, whose answers wait up to a scheduler slice (2-4 ms here).
# Against every server, the queries after the first -q take 2-12 ms for
# about 0.1 s (the jump is at query 2000 with -q 2000 and at 500 with -q 500,
# with a cold or a warm server alike), which is 2-3% of a 5 s run: that
# alone sets p99. A server with a small socket buffer drops that burst
# instead, and dnsperf leaves dropped queries out of its percentiles.
#
# So the first `warm` seconds are a warm-up: this prints the latency in
# seconds of every answer after them, one a line, and writes to `lostfile`
# the queries lost that were sent after them. dnsperf prints answers in the
# order it receives them and a lost query ("> T") when it times out, so the
# line count stands in for time: line n arrives about n/rate seconds in, and
# a "> T" line was sent `timeout` seconds before it was printed.
#
# awk -v rate=R -v warm=SECONDS -v timeout=SECONDS -v lostfile=F -f steady.awk dnsperf.out
BEGIN { skip = rate * warm; shift = rate * timeout; lost = 0 }
/^> / {
	n++
	if ($2 == "T") { if (n - shift > skip) lost++; next }
	if (n > skip) print $NF
}
END { print lost > lostfile }
