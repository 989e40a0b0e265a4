package zones

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// persistZones are snapshots of every shape: listing-like (IPv4 /32, IPv6
// /64), ranges and exclusions, long IPv6 prefixes, per-entry values.
func persistZones(t testing.TB) []*Snapshot {
	r := rand.New(rand.NewPCG(5, 6))
	info := Info{Zone: "bl.persist.test", Serial: 77, TXT: "listed $", TTL: 300 * time.Second, Built: time.Unix(1767225600, 123).UTC()}
	var listing []Entry
	for range 5000 {
		listing = append(listing, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(r.IntN(4) + 10), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}), 32), Codes: Codes(1 + r.IntN(15))})
	}
	for range 500 {
		var b [16]byte
		b[0], b[1], b[7] = 0x20, 0x01, byte(r.IntN(256))
		b[5] = byte(r.IntN(256))
		listing = append(listing, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Codes: CodeBounce})
	}
	mixed := slices.Clone(listing[:300])
	mixed = append(mixed,
		Entry{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Codes: CodeAutoreply},
		Entry{Prefix: netip.MustParsePrefix("192.0.2.128/25"), Exclude: true},
		Entry{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Codes: CodeBounce, Value: &Value{A: []netip.Addr{netip.MustParseAddr("127.0.0.10")}, TXT: "own $", OwnTXT: true}},
		Entry{Prefix: netip.MustParsePrefix("2001:db8::/48"), Codes: CodeCallout},
		Entry{Prefix: netip.MustParsePrefix("2001:db8:0:1::/64"), Exclude: true},
		Entry{Prefix: netip.MustParsePrefix("2001:db8:5::1/128"), Codes: CodeChallenge},
		Entry{Prefix: netip.MustParsePrefix("2001:db8:5::/96"), Codes: CodeBounce, Value: &Value{TXT: "", OwnTXT: true}},
	)
	return []*Snapshot{
		Build(info, nil),
		Build(info, listing),
		Build(info, mixed),
		Build(info, listing).With(Info{Zone: "bl.persist.test", Serial: 78, TXT: "listed $"}, mixed[300:302]),
	}
}

func entriesOf(s *Snapshot) []Entry {
	var out []Entry
	s.Entries(func(e Entry) bool {
		if e.Value != nil {
			v := *e.Value
			e.Value = &v
		}
		out = append(out, e)
		return true
	})
	return out
}

func TestSnapshotPersistRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 8))
	for i, s := range persistZones(t) {
		path := filepath.Join(dir, "snap")
		if err := SaveSnapshotFile(path, s); err != nil {
			t.Fatal(err)
		}
		got, err := LoadSnapshotFile(path)
		if err != nil {
			t.Fatalf("zone %d: %v", i, err)
		}
		if got.Zone != s.Zone || got.Serial != s.Serial || got.TXT != s.TXT || got.TTL != s.TTL || !got.Built.Equal(s.Built) || got.Len() != s.Len() {
			t.Errorf("zone %d: info %+v, want %+v", i, got.Info, s.Info)
		}
		a, b := entriesOf(s), entriesOf(got)
		if len(a) != len(b) {
			t.Fatalf("zone %d: %d entries, want %d", i, len(b), len(a))
		}
		for j := range a {
			if a[j].Prefix != b[j].Prefix || a[j].Codes != b[j].Codes || a[j].Exclude != b[j].Exclude ||
				(a[j].Value == nil) != (b[j].Value == nil) || (a[j].Value != nil && a[j].Value.key() != b[j].Value.key()) {
				t.Fatalf("zone %d entry %d: %+v, want %+v", i, j, b[j], a[j])
			}
		}
		// Every lookup answers the same, listed or not.
		for range 20000 {
			var addr netip.Addr
			if r.IntN(2) == 0 {
				addr = netip.AddrFrom4([4]byte{byte(r.IntN(4) + 10), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			} else {
				var x [16]byte
				x[0], x[1], x[7], x[5], x[15] = 0x20, 0x01, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(3))
				addr = netip.AddrFrom16(x)
			}
			c1, v1 := s.Find(addr)
			c2, v2 := got.Find(addr)
			if c1 != c2 || s.Value(v1).key() != got.Value(v2).key() {
				t.Fatalf("zone %d: %s answers %v, want %v", i, addr, c2, c1)
			}
		}
		for _, e := range a {
			if c1, c2 := s.Lookup(e.Prefix.Addr()), got.Lookup(e.Prefix.Addr()); c1 != c2 {
				t.Fatalf("zone %d: %s answers %v, want %v", i, e.Prefix, c2, c1)
			}
		}
	}
}

// A damaged, torn or foreign file is refused, never half-loaded.
func TestSnapshotPersistDamage(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, persistZones(t)[2]); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for i := 0; i < len(good); i += 1 + len(good)/500 {
		bad := slices.Clone(good)
		bad[i] ^= 0x40
		if _, err := ReadSnapshot(bytes.NewReader(bad), 0); !errors.Is(err, ErrSnapshotFile) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, n := range []int{0, 5, len(good) / 2, len(good) - 1} {
		if _, err := ReadSnapshot(bytes.NewReader(good[:n]), 0); !errors.Is(err, ErrSnapshotFile) {
			t.Errorf("torn at %d: %v", n, err)
		}
	}
	if _, err := ReadSnapshot(bytes.NewReader(good), int64(len(good)-1)); !errors.Is(err, ErrSnapshotFile) {
		t.Errorf("over the size limit: %v", err)
	}
	// A well-checksummed file of the wrong structure (a bug, a future
	// version) is refused too.
	body := slices.Clone(good[:len(good)-sha256.Size])
	body[len(snapMagic)] = 9 // version
	sum := sha256.Sum256(body)
	if _, err := ReadSnapshot(bytes.NewReader(append(body, sum[:]...)), 0); !errors.Is(err, ErrSnapshotFile) {
		t.Errorf("version 9: %v", err)
	}
}

// No input makes the reader panic or return a snapshot whose lookups
// panic; the checksum is recomputed so that the structure checks are
// reached.
func FuzzReadSnapshot(f *testing.F) {
	for _, s := range persistZones(f)[:3] {
		var buf bytes.Buffer
		WriteSnapshot(&buf, s)
		b := buf.Bytes()
		if len(b) > 4096 {
			continue
		}
		f.Add(b[:len(b)-sha256.Size])
	}
	small := Build(Info{Zone: "z", Serial: 1}, []Entry{
		{Prefix: netip.MustParsePrefix("10.0.0.1/32"), Codes: CodeBounce},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Codes: CodeCallout},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Codes: CodeBounce},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Codes: CodeBounce, Value: &Value{TXT: "x", OwnTXT: true}},
	})
	var buf bytes.Buffer
	WriteSnapshot(&buf, small)
	f.Add(buf.Bytes()[:buf.Len()-sha256.Size])
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha256.Sum256(body)
		s, err := ReadSnapshot(bytes.NewReader(append(slices.Clone(body), sum[:]...)), 1<<20)
		if err != nil {
			return
		}
		for _, a := range []string{"10.0.0.1", "10.1.2.3", "0.0.0.0", "255.255.255.255", "2001:db8::1", "2001:db8::2", "::"} {
			addr := netip.MustParseAddr(a)
			_, v := s.Find(addr)
			s.Value(v)
		}
		s.Entries(func(Entry) bool { return true })
		var w bytes.Buffer
		WriteRbldnsd(&w, s, SOA{}.WithDefaults("z"))
	})
}

// BenchmarkSnapshotLoad1M: loading the persisted listing of 1M IPv4
// addresses (what `blowback run` serves at start before its rebuild).
func BenchmarkSnapshotLoad1M(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	bl := NewBuilder(Info{Zone: "bl.persist.test", Serial: 1, TXT: "listed $"})
	for range 1_000_000 {
		bl.Add4(r.Uint32(), CodeBounce, 0)
	}
	path := filepath.Join(b.TempDir(), "snap")
	if err := SaveSnapshotFile(path, bl.Snapshot()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := LoadSnapshotFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
