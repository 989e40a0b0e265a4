#!/bin/sh
# Regenerates the exim-real-*.eml fixtures with a throwaway Exim 4.96
# (Debian's exim4 packages unpacked with dpkg -x; run as root, needs the
# Debian-exim user; binds no port): a message from a forged sender at
# trap.blowback.test to an unknown local user bounces, and one to a relay
# that refuses connections draws a delay warning; both notices are
# delivered into an mbox under the temp dir and split into files.
# Usage: sh gen-exim.sh DEBDIR OUTDIR
set -eu
debs=${1:?usage: gen-exim.sh DEBDIR OUTDIR}
out=${2:?usage: gen-exim.sh DEBDIR OUTDIR}
d=$(mktemp -d /tmp/blowback-exim.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$d"' EXIT
id Debian-exim >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim
for f in "$debs"/exim4-base_*.deb "$debs"/exim4-daemon-light_*.deb; do dpkg -x "$f" "$d/root"; done
exim="$d/root/usr/sbin/exim4"
mkdir -p "$d/spool" "$d/log" "$d/out"
chown -R Debian-exim "$d/spool" "$d/log" "$d/out"
chmod 755 "$d"
cat >"$d/exim.conf" <<CF
primary_hostname = mx1.sender.blowback.test
exim_path = $d/root/usr/sbin/exim4
domainlist local_domains = sender.blowback.test
spool_directory = $d/spool
log_file_path = $d/log/%slog
exim_user = Debian-exim
never_users =
trusted_users = root
keep_environment =
delay_warning = 2s
host_lookup =
begin routers
trapbox:
  driver = accept
  domains = trap.blowback.test
  transport = trapfile
slow:
  driver = manualroute
  domains = slow.blowback.test
  route_list = * 127.0.0.1 byname
  transport = refused
  self = send
local:
  driver = redirect
  domains = +local_domains
  local_parts = postmaster
  data = :blackhole:
begin transports
trapfile:
  driver = appendfile
  file = $d/out/mbox
  user = Debian-exim
  envelope_to_add
  return_path_add
refused:
  driver = smtp
  port = 9
  allow_localhost
begin retry
* * F,1h,1m
CF
msg() {
	printf 'Received: from spambot.example.net (spambot.example.net [198.51.100.23])\n\tby mx0.example.org with ESMTP; Mon, 2 Mar 2026 10:00:00 +0000\nFrom: <trap-forged@trap.blowback.test>\nTo: <%s>\nSubject: Cheap meds %s\nMessage-ID: <spam-%s@spambot.example.net>\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\nBuy now.\n' "$1" "$2" "$2"
}
msg nobody-here@sender.blowback.test 3 | "$exim" -C "$d/exim.conf" -odi -f trap-forged@trap.blowback.test nobody-here@sender.blowback.test
msg someone@slow.blowback.test 4 | "$exim" -C "$d/exim.conf" -odi -f trap-forged@trap.blowback.test someone@slow.blowback.test || true
sleep 3 # past delay_warning: the next queue run sends the warning
"$exim" -C "$d/exim.conf" -qff
"$exim" -C "$d/exim.conf" -qff
mkdir -p "$out"
awk -v out="$out" '/^From /{n++; f=sprintf("%s/exim-real-%d.eml", out, n); next} {print > f}' "$d/out/mbox"
ls -l "$out"
