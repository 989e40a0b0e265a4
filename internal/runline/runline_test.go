package runline

import (
	"bytes"
	"log/slog"
	"testing"
)

// TestParse reads back what slog's text handler writes for the running
// line, as cmd/blowback logs it.
func TestParse(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info(Msg, "zone", "bl.example", "smtp", "127.0.0.1:2525",
		"dns", "[::1]:5353", "http", "127.0.0.1:8080", "ready", true)
	a, ok := Parse(b.String())
	if want := (Addrs{SMTP: "127.0.0.1:2525", DNS: "[::1]:5353", HTTP: "127.0.0.1:8080"}); !ok || a != want {
		t.Fatalf("Parse(%q) = %+v, %v; want %+v", b.String(), a, ok, want)
	}
	b.Reset()
	slog.New(slog.NewTextHandler(&b, nil)).Info(Msg, "mode", "trap", "smtp", "127.0.0.1:25", "http", "127.0.0.1:80")
	if a, ok := Parse(b.String()); !ok || a != (Addrs{SMTP: "127.0.0.1:25", HTTP: "127.0.0.1:80"}) {
		t.Fatalf("trap mode: %+v, %v", a, ok)
	}
	if _, ok := Parse(`time=x level=INFO msg="store open" smtp=1.2.3.4:25`); ok {
		t.Fatal("another line parsed as the running line")
	}
}
