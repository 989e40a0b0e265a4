#!/bin/sh
# Regenerates the postfix-*.eml fixtures with a throwaway Postfix instance
# (Debian's postfix package, run as root; it binds no port): a message from
# a forged sender at trap.blowback.test to an unknown local user bounces,
# and one to an unreachable relay draws a delay warning; both reports are
# delivered into a mailbox under the temp dir and split into files.
# Usage: sh gen-postfix.sh OUTDIR
set -eu
out=${1:?usage: gen-postfix.sh OUTDIR}
. "$(dirname "$0")/postfix-instance.sh"
postfix_instance blowback-pf "local_transport = error:5.1.1 user unknown
transport_maps = inline:{unreachable.blowback.test=smtp:[127.0.0.1]:9}
delay_warning_time = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s"
send() {
	/usr/sbin/sendmail -C "$d/etc" -f trap-forged@trap.blowback.test "$1" <<MSG
Received: from spambot.example.net (spambot.example.net [198.51.100.23])
	by mx0.relay.blowback.test (Postfix) with ESMTP id 4ABCD1234
	for <$1>; Mon, 2 Mar 2026 10:00:00 +0000 (UTC)
From: "Cheap Meds" <trap-forged@trap.blowback.test>
To: <$1>
Subject: Best prices on meds
Message-ID: <spam-$2@spambot.example.net>
Date: Mon, 2 Mar 2026 10:00:00 +0000

Buy now at http://meds.example.net/
MSG
}
send nosuchuser@sender.blowback.test 1
send victim@unreachable.blowback.test 2
i=0
while [ $i -lt 60 ] && [ "$(grep -c '^From MAILER-DAEMON' "$d/mail/trap.mbox" 2>/dev/null || echo 0)" -lt 2 ]; do
	sleep 1; i=$((i + 1))
done
mkdir -p "$out"
awk -v out="$out" '/^From MAILER-DAEMON/ {n++; f=sprintf("%s/postfix-raw-%d.eml", out, n); next} f {print > f}' "$d/mail/trap.mbox"
for f in "$out"/postfix-raw-*.eml; do
	if grep -q '^Subject: Delayed Mail' "$f"; then mv "$f" "$out/postfix-delay.eml"; else mv "$f" "$out/postfix-bounce.eml"; fi
done
ls -l "$out"
