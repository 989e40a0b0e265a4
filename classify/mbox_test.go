package classify

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestMboxReader(t *testing.T) {
	mbox := "From MAILER-DAEMON Tue Jun  3 10:11:12 2025\n" +
		"Subject: one\n\nbody line\n>From quoted once\n>>From quoted twice\nFrom inside a paragraph is not a separator\n\n" +
		"From someone@example.org Tue Jun  3 10:11:13 2025\r\n" +
		"Subject: two\r\n\r\n\r\nlast\r\n"
	for _, c := range []struct {
		rd    bool
		first string
	}{
		{true, "Subject: one\r\n\r\nbody line\r\nFrom quoted once\r\n>From quoted twice\r\nFrom inside a paragraph is not a separator\r\n"},
		{false, "Subject: one\r\n\r\nbody line\r\nFrom quoted once\r\n>>From quoted twice\r\nFrom inside a paragraph is not a separator\r\n"},
	} {
		r := NewMboxReader(strings.NewReader(mbox), c.rd)
		m1, f1, err := r.Next()
		if err != nil || string(m1) != c.first || f1 != "MAILER-DAEMON" {
			t.Errorf("mboxrd=%v first: %q %q %v", c.rd, m1, f1, err)
		}
		m2, f2, err := r.Next()
		if err != nil || string(m2) != "Subject: two\r\n\r\n\r\nlast\r\n" || f2 != "someone@example.org" {
			t.Errorf("second: %q %q %v", m2, f2, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Errorf("third: %v, want EOF", err)
		}
	}
	if _, _, err := NewMboxReader(strings.NewReader("Subject: not an mbox\n\n"), true).Next(); err == nil {
		t.Error("a plain message read as an mbox")
	}
	if _, _, err := NewMboxReader(strings.NewReader(""), true).Next(); err != io.EOF {
		t.Errorf("empty mbox: %v", err)
	}
}

func FuzzMboxReader(f *testing.F) {
	f.Add([]byte("From a b\nSubject: x\n\n>From y\n\nFrom c d\n\n"), true)
	f.Add([]byte("From \n\n\n\nFrom \n"), false)
	f.Fuzz(func(t *testing.T, b []byte, rd bool) {
		r := NewMboxReader(bytes.NewReader(b), rd)
		for i := 0; i < len(b)+2; i++ {
			m, _, err := r.Next()
			if err != nil {
				return
			}
			if len(m) > 2*len(b)+2 {
				t.Fatalf("message of %d bytes from %d input bytes", len(m), len(b))
			}
		}
		t.Fatal("reader did not end")
	})
}
