// Package runline is the line a blowback node logs once it serves
// (`msg="blowback running" ... smtp=ADDR dns=ADDR http=ADDR`): cmd/blowback
// writes it, and the tools and tests that start the binary read the bound
// addresses from it.
package runline

import "strings"

// Msg is the log message of the running line.
const Msg = "blowback running"

// Addrs are the addresses a running line names; "" for a listener it does
// not name.
type Addrs struct{ SMTP, DNS, HTTP string }

// Parse reads the addresses from line, a log line in slog's text format;
// ok is false when line is not the running line.
func Parse(line string) (a Addrs, ok bool) {
	if !strings.Contains(line, Msg) {
		return Addrs{}, false
	}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "smtp":
			a.SMTP = v
		case "dns":
			a.DNS = v
		case "http":
			a.HTTP = v
		}
	}
	return a, true
}
