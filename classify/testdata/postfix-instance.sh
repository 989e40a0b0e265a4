# Sourced by gen-postfix.sh and gen-vacation.sh (not run on its own).
# postfix_instance PREFIX EXTRA: a throwaway Postfix instance (Debian's
# postfix package, run as root; it binds no port) in a new temp dir $d
# (/tmp/PREFIX.XXXXXX), stopped and removed at exit (KEEP=1 keeps the dir).
# It delivers mail for trap.blowback.test into $d/mail/trap.mbox; EXTRA is
# more main.cf lines. The instance is started before it returns.
postfix_instance() {
	d=$(mktemp -d "/tmp/$1.XXXXXX")
	trap 'postfix -c "$d/etc" stop >/dev/null 2>&1 || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$d"' EXIT
	chmod 755 "$d"
	mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail"
	chown postfix "$d/data"
	chown nobody "$d/mail"
	# master.cf: Debian's, without the smtpd listener, nothing chrooted.
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
	printf '%s\n' "$2" >>"$d/etc/main.cf"
	postfix -c "$d/etc" start
}
