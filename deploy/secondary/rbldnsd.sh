#!/bin/sh
# rbldnsd mirror fed by rsync from blowback's export directory
# (deploy/rsyncd.conf on the primary). Run from cron every few minutes;
# rbldnsd reloads the file by itself when it changes (-c, default 60s).
#
#   rbldnsd -u rbldns -r /var/lib/rbldns -b 0.0.0.0/53 bl.example.org:combined:bl.example.org.rbldnsd
set -eu
ZONE=bl.example.org
SRC=rsync://primary.example.org/blowback/$ZONE.rbldnsd
DST=/var/lib/rbldns/$ZONE.rbldnsd
rsync -t --timeout=120 "$SRC" "$DST.tmp"
# Sanity check before replacing what rbldnsd serves: blowback's header line.
head -n 1 "$DST.tmp" | grep -q "^# blowback zone $ZONE serial" || { echo "bad export" >&2; exit 1; }
mv "$DST.tmp" "$DST"
