//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// minNoFile is the open-file limit below which a node warns: the default
// connection caps (trap slots, DNS TCP, HTTP's web.DefaultMaxConns) plus
// the store's files need several thousand descriptors.
const minNoFile = 8192

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit at start
// (issue 13.5: idle HTTP connections exhausted the descriptors and took
// SMTP and DNS down with HTTP). Go does this by itself since 1.19; this
// makes sure of it whatever the runtime, and says when the hard limit is
// too low (raise it: LimitNOFILE in the systemd unit, ulimit -Hn).
func raiseNoFile(log *slog.Logger) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return 0
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			log.Warn("cannot raise the open-file limit", "soft", rl.Cur, "hard", rl.Max, "err", err)
		} else {
			rl = want
		}
	}
	if rl.Cur < minNoFile {
		log.Warn("open-file limit is low for a public node; raise it (LimitNOFILE=65536 in the systemd unit)", "limit", rl.Cur, "want", minNoFile)
	} else {
		log.Debug("open-file limit", "limit", rl.Cur)
	}
	return uint64(rl.Cur)
}
