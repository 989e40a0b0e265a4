#!/bin/sh
# Regenerates vacation-real.eml: vacation(1) (Debian's vacation package,
# its default message, -z: null envelope sender) answers a message from a
# forged sender at trap.blowback.test; its reply, as it hands it to
# sendmail, is submitted to a throwaway Postfix instance (Debian's postfix
# package, run as root; binds no port) that delivers it into a mailbox under
# the temp dir. vacation calls /usr/sbin/sendmail by its fixed path, and
# postdrop refuses another instance's config directory to an unprivileged
# caller, so vacation runs in a private mount namespace where that path is a
# script that keeps the reply, and this script submits it as root.
# Usage: sh gen-vacation.sh OUTDIR
set -eu
out=${1:?usage: gen-vacation.sh OUTDIR}
. "$(dirname "$0")/postfix-instance.sh"
postfix_instance blowback-vac ""
mkdir -p "$d/vac"
chown nobody "$d/vac"
# vacation(1)'s default message (what `vacation -i` offers to edit).
cat >"$d/vac/msg" <<'MSG'
Subject: away from my mail

I will not be reading my mail for a while.
Your mail concerning "$SUBJECT"
will be read when I'm back.
MSG
chmod 644 "$d/vac/msg"
cat >"$d/vac/in.eml" <<MSG
Return-Path: <trap-forged@trap.blowback.test>
Received: from spambot.example.net (spambot.example.net [198.51.100.23])
	by mx1.sender.blowback.test (Postfix) with ESMTP id 4ABCD1235
	for <nobody@sender.blowback.test>; Mon, 2 Mar 2026 10:00:00 +0000 (UTC)
From: "Cheap Meds" <trap-forged@trap.blowback.test>
To: <nobody@sender.blowback.test>
Subject: Best prices on meds
Message-ID: <spam-5@spambot.example.net>
Date: Mon, 2 Mar 2026 10:00:00 +0000

Buy now at http://meds.example.net/
MSG
cat >"$d/vac/sendmail" <<SM
#!/bin/sh
printf '%s\n' "\$*" >"$d/vac/args"
cat >"$d/vac/reply.eml"
SM
chmod 755 "$d/vac/sendmail"
unshare -m sh -c "mount --bind '$d/vac/sendmail' /usr/sbin/sendmail && vacation -j -z -r 0 -f '$d/vac/db' -m '$d/vac/msg' nobody <'$d/vac/in.eml'"
# vacation ran "sendmail -f <> -- RCPT" (-z); submit the same to the instance.
rcpt=$(sed 's/.* -- //' "$d/vac/args")
/usr/sbin/sendmail -C "$d/etc" -f '' "$rcpt" <"$d/vac/reply.eml"
i=0
while [ $i -lt 60 ] && ! grep -q '^From ' "$d/mail/trap.mbox" 2>/dev/null; do
	sleep 1; i=$((i + 1))
done
mkdir -p "$out"
awk '/^From / {n++; next} n == 1 {print}' "$d/mail/trap.mbox" >"$out/vacation-real.eml"
ls -l "$out"
