// Package classify decides what a message that reached a trap is: a
// delivery report, an auto-reply, a challenge, a read receipt (all
// backscatter), a feedback report, spam, or other. It is pure: bytes and an
// optional envelope in, a Result with the signals that decided it out. The
// trap (package trap) runs it on every message, `blowback classify` on
// files, and `blowback import` on mailboxes, for which it also reads mbox
// files (MboxReader) and Received fields (ParseReceived, HopRule) and makes
// a message's evidence (ImportRule).
//
// It imports only store, for the shared vocabulary (store.Kind, store.DSN,
// store.Original); never trap or the SMTP server.
package classify
