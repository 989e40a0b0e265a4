// Package runline is the line a blowback node logs once it serves
// (`msg="blowback running" ... smtp=ADDR dns=ADDR http=ADDR`): cmd/blowback
// writes it, and the tools and tests that start the binary read the bound
// addresses from it.
package runline

import (
	"strconv"
	"strings"
)

// Msg is the log message of the running line.
const Msg = "blowback running"

// Addrs are the addresses a running line names; "" for a listener it does
// not name.
type Addrs struct{ SMTP, DNS, HTTP string }

// Parse reads the addresses from line, a log line in slog's text format;
// ok is false when line is not the running line.
func Parse(line string) (a Addrs, ok bool) {
	kv := Fields(line)
	if kv["msg"] != Msg {
		return Addrs{}, false
	}
	return Addrs{SMTP: kv["smtp"], DNS: kv["dns"], HTTP: kv["http"]}, true
}

// Fields parses a log line in slog's text format: key=value and
// key="quoted value"; a trailing newline is ignored.
func Fields(line string) map[string]string {
	kv := map[string]string{}
	line = strings.TrimRight(line, "\r\n")
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		k, rest := line[:eq], line[eq+1:]
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if uq, err := strconv.Unquote(rest[:min(end+1, len(rest))]); err == nil {
				v = uq
			}
			rest = rest[min(end+1, len(rest)):]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			v, rest = rest[:sp], rest[sp:]
		}
		kv[k] = v
		line = rest
	}
	return kv
}
