package store

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzParseRef: any key parses or is refused without panicking, and a key
// that parses is exactly the key of the event it describes (the layout in
// the package doc is a bijection).
func FuzzParseRef(f *testing.F) {
	e := &Event{ID: EventID{1, 2, 3}, Time: time.Unix(1700000000, 5), ClientIP: netip.MustParseAddr("192.0.2.1"), Kind: KindBounce,
		Rcpts: []string{"x@trap.test"}, TrapDomain: "trap.test"}
	f.Add(eventKey(e))
	e.ClientIP = netip.MustParseAddr("2001:db8::1")
	f.Add(eventKey(e))
	f.Add([]byte{pEvent, 4, 1, 2})
	f.Add([]byte{pEvent, 6})
	f.Add([]byte{pManual, 4, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, k []byte) {
		r, ok := parseRef(k)
		if !ok {
			return
		}
		if !r.Addr.IsValid() {
			t.Fatalf("parsed ref without address from %x", k)
		}
		// Rebuild the key from the ref: same bytes.
		re := make([]byte, 0, len(k))
		re = append(re, pEvent)
		re = appendAddr(re, r.Addr)
		if !bytes.HasPrefix(k, re) {
			t.Fatalf("address %v does not rebuild the key prefix of %x", r.Addr, k)
		}
		if r.ID != EventID(k[len(k)-16:]) {
			t.Fatalf("id %v is not the key's last 16 bytes", r.ID)
		}
	})
}

// FuzzDecodeValue: stored values of every table decode or fail cleanly;
// an event that decodes and validates encodes back to a value that decodes
// to the same event.
func FuzzDecodeValue(f *testing.F) {
	e := &Event{ID: NewEventID(), Time: time.Now().UTC(), ClientIP: netip.MustParseAddr("192.0.2.1"), Kind: KindAutoreply, Rcpts: []string{"x@t"}}
	v, _ := encodeJSON(e)
	f.Add(v)
	a, _ := encodeJSON(Action{Time: time.Now().UTC(), Prefix: netip.MustParsePrefix("192.0.2.0/24"), Op: OpList, Kinds: []Kind{KindBounce}})
	f.Add(a)
	f.Add([]byte{valueVersion, '{', '}'})
	f.Add([]byte{2, '{', '}'})
	f.Add([]byte{valueVersion, '{', '"', 'k', 'i', 'n', 'd', '"', ':', '"', 'b', 'o', 'g', 'u', 's', '"', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if err := decodeJSON(b, &ev); err == nil && ev.Validate() == nil {
			again, err := encodeJSON(&ev)
			if err != nil {
				t.Fatalf("decoded event does not encode: %v", err)
			}
			var ev2 Event
			if err := decodeJSON(again, &ev2); err != nil || ev2.ID != ev.ID || ev2.Kind != ev.Kind || ev2.ClientIP != ev.ClientIP || !ev2.Time.Equal(ev.Time) {
				t.Fatalf("event round trip: %+v vs %+v (%v)", ev, ev2, err)
			}
		}
		var act Action
		_ = decodeJSON(b, &act)
		var au AuditEntry
		_ = decodeJSON(b, &au)
	})
}

// FuzzParseEventID: accepted ids print back as the same hex.
func FuzzParseEventID(f *testing.F) {
	f.Add("00112233445566778899aabbccddeeff")
	f.Add("00112233445566778899AABBCCDDEEFF")
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseEventID(s)
		if err != nil {
			return
		}
		if back, err := ParseEventID(id.String()); err != nil || back != id {
			t.Fatalf("%q → %v → %v, %v", s, id, back, err)
		}
	})
}
