// Package consumers embeds the consumer configuration snippets in this
// folder (Postfix, Exim, SpamAssassin, rspamd, Haraka) so that the list's card
// (web/card.go) shows exactly the files the consumer tests run.
package consumers

import (
	"embed"
	"strings"
)

//go:embed *.cf *.conf rspamd/*.conf rspamd/*.lua haraka/plugins/*.js haraka/config/*
var files embed.FS

// Snippet is one consumer configuration file.
type Snippet struct {
	File  string // path inside deploy/consumers
	Title string // what it configures
	Text  string // its text with the example zone replaced
}

// ExampleZone is the zone name the snippets are written for.
const ExampleZone = "bl.blowback.test"

var titles = []struct{ file, title string }{
	{"postfix-main.cf", "Postfix (main.cf), safe mode"},
	{"postfix-postscreen.cf", "Postfix postscreen"},
	{"exim.conf", "Exim (acl_check_rcpt), safe mode"},
	{"spamassassin.cf", "SpamAssassin"},
	{"rspamd/groups.conf", "rspamd (local.d/groups.conf)"},
	{"rspamd/rspamd.local.lua", "rspamd (rspamd.local.lua), safe mode"},
	{"haraka/plugins/blowback.js", "Haraka (plugins/blowback.js), safe mode"},
	{"haraka/config/blowback.ini", "Haraka (config/blowback.ini)"},
	{"haraka/config/plugins", "Haraka (config/plugins)"},
}

// Snippets returns the snippets in a fixed order with ExampleZone
// replaced by zone (when zone is not empty).
func Snippets(zone string) []Snippet {
	var out []Snippet
	for _, t := range titles {
		b, err := files.ReadFile(t.file)
		if err != nil {
			continue
		}
		s := string(b)
		if zone != "" {
			s = strings.ReplaceAll(s, ExampleZone, zone)
		}
		out = append(out, Snippet{File: t.file, Title: t.title, Text: s})
	}
	return out
}
