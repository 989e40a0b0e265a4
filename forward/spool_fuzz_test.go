package forward

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// FuzzDecodeRecord: a spool record read back from disk (possibly damaged)
// decodes or fails with ErrCorrupt, never panics; a record written by
// encodeRecord decodes to the same event.
func FuzzDecodeRecord(f *testing.F) {
	ev := &store.Event{ID: store.NewEventID(), Time: time.Unix(1700000000, 0).UTC(), ClientIP: netip.MustParseAddr("192.0.2.1"), Kind: store.KindBounce}
	if v, err := encodeRecord(ev, []byte("raw")); err == nil {
		f.Add([]byte{pQueue, 0, 0, 0, 0, 0, 0, 0, 1}, v)
	}
	f.Add([]byte{pDead}, []byte{recordVersion})
	f.Add([]byte{}, []byte{recordVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		it, err := decodeRecord(k, v)
		if err != nil {
			return
		}
		// A record whose event is valid survives a rewrite unchanged.
		var e store.Event
		if json.Unmarshal(it.Event, &e) != nil || e.Validate() != nil {
			return
		}
		// Record times are Unix nanoseconds: years 1678 to 2262 (events
		// are stamped by the trap's clock).
		if y := e.Time.Year(); y < 1700 || y > 2200 {
			return
		}
		v2, err := encodeRecord(&e, it.Raw)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		it2, err := decodeRecord(k, v2)
		if err != nil || it2.ID != e.ID || !bytes.Equal(it2.Raw, it.Raw) || !it2.Time.Equal(e.Time) {
			t.Fatalf("rewrite changed the record: %+v vs %+v (%v)", it, it2, err)
		}
	})
}
