#!/bin/sh
# rbldnsd mirror fed by rsync from blowback's export directory
# (deploy/rsyncd.conf on the primary). Run from cron every few minutes;
# rbldnsd reloads the file by itself when it changes (-c, default 60s).
#
#   rbldnsd -u rbldns -r /var/lib/rbldns -b 0.0.0.0/53 bl.example.org:combined:bl.example.org.rbldnsd
#
# (or `blowback dnsd --zone-file /var/lib/rbldns/bl.example.org.rbldnsd
#  --zone bl.example.org --verify-key /etc/blowback/export.pub`)
#
# The file and its signature (FILE.minisig, [export] sign_key on the
# primary) are pulled into a staging directory; only a file that
#   - carries a good signature by VERIFY_KEY for this zone and its serial
#     (`blowback verify`, or `minisign -V` and the trusted comment),
#   - starts with blowback's header for this zone,
#   - has a newer serial than the file in service,
# is renamed into place (signature first, then the file, each atomically).
# Anything else leaves the file in service alone and exits non-zero.
#
# Settings (environment): ZONE, SRC (rsync URL or directory of the export),
# DST (directory rbldnsd reads), VERIFY_KEY (public key file or RW... string;
# empty: no signature check, not recommended), BLOWBACK (the blowback
# binary, default from PATH; empty: not used), MINISIGN (likewise).
set -eu
ZONE=${ZONE:-bl.example.org}
SRC=${SRC:-rsync://primary.example.org/blowback}
DST=${DST:-/var/lib/rbldns}
VERIFY_KEY=${VERIFY_KEY-/etc/blowback/export.pub}
BLOWBACK=${BLOWBACK-$(command -v blowback || true)}
MINISIGN=${MINISIGN-$(command -v minisign || true)}

FILE=$ZONE.rbldnsd
STAGE=$DST/.incoming
fail() { echo "rbldnsd.sh: $*; $DST/$FILE left as it was" >&2; exit 1; }

# -I: always compare contents (rsync's delta), never trust size and mtime
# alone: two exports a second apart can have the same of both.
mkdir -p "$STAGE"
rsync -t -I --timeout=120 "$SRC/$FILE" "$STAGE/" || fail "rsync failed"
if [ -n "$VERIFY_KEY" ]; then
	rm -f "$STAGE/$FILE.minisig"
	rsync -t -I --timeout=120 "$SRC/$FILE.minisig" "$STAGE/" 2>/dev/null || fail "no signature at $SRC/$FILE.minisig"
fi

# blowback's header: "# blowback zone ZONE serial N entries M".
header=$(head -n 1 "$STAGE/$FILE")
case $header in
"# blowback zone $ZONE serial "*) ;;
*) fail "not a blowback export of $ZONE" ;;
esac
serial=$(echo "$header" | awk '{print $6}')
case $serial in
'' | *[!0-9]*) fail "no serial in the header" ;;
esac

if [ -n "$VERIFY_KEY" ]; then
	if [ -n "$BLOWBACK" ]; then
		"$BLOWBACK" verify -q --key "$VERIFY_KEY" "$STAGE/$FILE" || fail "bad or missing signature"
	elif [ -n "$MINISIGN" ]; then
		case $VERIFY_KEY in
		RW*) keyarg=-P ;;
		*) keyarg=-p ;;
		esac
		out=$("$MINISIGN" -V "$keyarg" "$VERIFY_KEY" -m "$STAGE/$FILE") || fail "bad or missing signature"
		tab=$(printf '\t')
		case $out in
		*"zone:$ZONE${tab}serial:$serial"*) ;;
		*) fail "the signature is not for zone $ZONE serial $serial" ;;
		esac
	else
		fail "VERIFY_KEY is set but neither blowback nor minisign is installed"
	fi
fi

# Never go back to an older serial (RFC 1982 arithmetic): a replayed old
# export, even a signed one, is refused; the same serial is nothing to do.
if [ -f "$DST/$FILE" ]; then
	old=$(head -n 1 "$DST/$FILE" | awk '{print $6}')
	case $old in
	'' | *[!0-9]*) old= ;;
	esac
	if [ -n "$old" ]; then
		d=$(((serial - old) & 0xFFFFFFFF))
		[ "$d" -ne 0 ] || exit 0
		[ "$d" -lt 2147483648 ] || fail "serial $serial is older than the $old in service"
	fi
fi

# Copies, so that the staged files stay for rsync's delta next time; each
# lands by rename.
install_file() {
	cp -p "$STAGE/$1" "$DST/.$1.new" && mv "$DST/.$1.new" "$DST/$1"
}
if [ -n "$VERIFY_KEY" ]; then
	install_file "$FILE.minisig" || fail "cannot install the signature"
fi
install_file "$FILE" || fail "cannot install the file"
echo "rbldnsd.sh: $ZONE serial $serial in service"
