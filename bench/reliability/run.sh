#!/bin/bash
# Reliability run (issue 9): builds blowback and relcheck, then runs the
# fault and load scenarios against real `blowback run` processes on
# loopback and prints the result table (Markdown). Bounded: every scenario
# has a fixed count and time; the whole run is killed after
# RELCHECK_TIMEOUT seconds (default 900).
#
#   bench/reliability/run.sh                  # everything
#   RELCHECK_ONLY=dns,admin bench/reliability/run.sh
#   RELCHECK_WORK=/tmp/rel bench/reliability/run.sh   # keep logs and data there
#
# The full-disk scenario needs a small filesystem for the data directory:
# run as root, the script mounts a tmpfs (size=FULLFS_SIZE, default 256m)
# and unmounts it at the end; without root that scenario is reported as
# skipped. Everything else runs unprivileged. See docs/reliability.md.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${RELCHECK_WORK:-$(mktemp -d /tmp/blowback-reliability.XXXXXX)}
mkdir -p "$work"
cd "$repo"

echo "building blowback and relcheck into $work" >&2
go build -o "$work/blowback" ./cmd/blowback
go build -o "$work/relcheck" ./bench/reliability/relcheck

# Thousands of connections on both ends.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

fulldir=""
mnt="$work/fullfs"
cleanup() {
	if [ -n "$fulldir" ]; then
		umount "$mnt" 2>/dev/null || true
	fi
}
trap cleanup EXIT INT TERM
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$mnt"
	if mount -t tmpfs -o "size=${FULLFS_SIZE:-256m}" tmpfs "$mnt" 2>/dev/null; then
		fulldir=$mnt
	else
		echo "cannot mount a tmpfs: the full-disk scenario is skipped" >&2
	fi
else
	echo "not root: the full-disk scenario is skipped" >&2
fi

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start=$(date +%s)
status=0
RELCHECK_SRC="$repo" timeout "${RELCHECK_TIMEOUT:-900}" "$work/relcheck" \
	-bin "$work/blowback" -work "$work" -fulldir "$fulldir" \
	${RELCHECK_ONLY:+-only "$RELCHECK_ONLY"} ${RELCHECK_VERBOSE:+-v} | tee "$work/table.md" || status=$?
echo "reliability run: $(( $(date +%s) - start ))s, exit $status; logs and data in $work" >&2
exit $status
