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
d=$(mktemp -d /tmp/blowback-vac.XXXXXX)
trap 'postfix -c "$d/etc" stop >/dev/null 2>&1 || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$d"' EXIT
chmod 755 "$d"
mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail" "$d/vac"
chown postfix "$d/data"
chown nobody "$d/mail" "$d/vac"
# vacation(1)'s default message (what `vacation -i` offers to edit).
cat >"$d/vac/msg" <<'MSG'
Subject: away from my mail

I will not be reading my mail for a while.
Your mail concerning "$SUBJECT"
will be read when I'm back.
MSG
chmod 644 "$d/vac/msg"
awk '$1=="smtp" && $2=="inet" {next} /^[a-z]/ && NF>=8 {$5="n"} {print}' /etc/postfix/master.cf >"$d/etc/master.cf"
cat >"$d/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx1.sender.blowback.test
mydomain = sender.blowback.test
myorigin = \$mydomain
mydestination = \$myhostname, localhost, sender.blowback.test
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = trap.blowback.test
virtual_mailbox_base = $d/mail
virtual_mailbox_maps = static:trap.mbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
queue_run_delay = 1s
maillog_file_prefixes = /tmp, /var
maillog_file = $d/maillog
smtp_host_lookup = native
disable_dns_lookups = yes
CF
postfix -c "$d/etc" start
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
