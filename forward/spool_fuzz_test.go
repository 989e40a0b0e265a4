package forward

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// FuzzDecodeRecord: a spool value that does not decode is an error, never a
// panic; one that does round-trips through encodeRecord.
func FuzzDecodeRecord(f *testing.F) {
	ev := &store.Event{ID: store.NewEventID(), Time: time.Unix(1700000000, 5).UTC(), ClientIP: netip.MustParseAddr("192.0.2.1"), Kind: store.KindBounce}
	good, err := encodeRecord(ev, []byte("raw"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:recordHeader])
	f.Add([]byte{recordVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		it, err := decodeRecord(key(pQueue, 1), v)
		if err != nil {
			return
		}
		if len(it.Event)+len(it.Raw)+recordHeader != len(v) || !bytes.Equal(it.Event, v[recordHeader:recordHeader+len(it.Event)]) {
			t.Fatalf("decoded %d+%d bytes of %d", len(it.Event), len(it.Raw), len(v))
		}
	})
}
