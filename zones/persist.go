package zones

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"time"
)

// ErrSnapshotFile: a persisted snapshot cannot be read (damaged, another
// version, too large).
var ErrSnapshotFile = errors.New("zones: bad snapshot file")

// The persisted snapshot is the snapshot's own arrays, little endian, so
// that loading it is a copy and a check, not a parse and a sort:
//
//	magic "blowback-snapshot\n", version u16
//	zone, TXT (u32 length + bytes), serial u32, TTL ns i64, built unix ns i64
//	v4 (u16s), v4c (u8s), v4v (u32s; 0 long: none), idx4 (u32s; 0 or 65537)
//	v6 (u64s), v6c, v6v, r4, r6 (segments), l6, vals
//	SHA-256 of everything before it
//
// Every array is a u64 count and then its elements. The checksum catches a
// torn or damaged file; the structure is checked as well (sorted arrays,
// index bounds), so that no file makes a lookup panic.
const (
	snapMagic   = "blowback-snapshot\n"
	snapVersion = 1
)

// WriteSnapshot writes s in the persisted form (Apex is not kept: zones
// loaded from a zone file have their file).
func WriteSnapshot(w io.Writer, s *Snapshot) error {
	le := binary.LittleEndian
	b := make([]byte, 0, 256+3*len(s.v4)+13*len(s.v6)+4*len(s.idx4)+4*len(s.v4v)+22*(len(s.r4)+len(s.r6))+23*len(s.l6))
	b = append(b, snapMagic...)
	str := func(x string) { b = le.AppendUint32(b, uint32(len(x))); b = append(b, x...) }
	b = le.AppendUint16(b, snapVersion)
	str(s.Zone)
	str(s.TXT)
	b = le.AppendUint32(b, s.Serial)
	b = le.AppendUint64(b, uint64(s.TTL))
	var built int64
	if !s.Built.IsZero() {
		built = s.Built.UnixNano()
	}
	b = le.AppendUint64(b, uint64(built))
	b = le.AppendUint64(b, uint64(len(s.v4)))
	for _, v := range s.v4 {
		b = le.AppendUint16(b, v)
	}
	codes := func(c []Codes) {
		b = le.AppendUint64(b, uint64(len(c)))
		for _, v := range c {
			b = append(b, byte(v))
		}
	}
	u32s := func(a []uint32) {
		b = le.AppendUint64(b, uint64(len(a)))
		for _, v := range a {
			b = le.AppendUint32(b, v)
		}
	}
	codes(s.v4c)
	u32s(s.v4v)
	u32s(s.idx4)
	b = le.AppendUint64(b, uint64(len(s.v6)))
	for _, v := range s.v6 {
		b = le.AppendUint64(b, v)
	}
	codes(s.v6c)
	u32s(s.v6v)
	segs := func(r []seg) {
		b = le.AppendUint64(b, uint64(len(r)))
		for _, g := range r {
			b = le.AppendUint64(b, g.lo)
			b = le.AppendUint64(b, g.hi)
			b = append(b, byte(g.codes), boolByte(g.excl))
			b = le.AppendUint32(b, g.val)
		}
	}
	segs(s.r4)
	segs(s.r6)
	b = le.AppendUint64(b, uint64(len(s.l6)))
	for _, l := range s.l6 {
		b = le.AppendUint64(b, l.hi)
		b = le.AppendUint64(b, l.lo)
		b = append(b, byte(l.bits), byte(l.codes), boolByte(l.excl))
		b = le.AppendUint32(b, l.val)
	}
	b = le.AppendUint64(b, uint64(len(s.vals)))
	for _, v := range s.vals {
		b = le.AppendUint64(b, uint64(len(v.A)))
		for _, a := range v.A {
			raw := a.AsSlice()
			b = append(b, byte(len(raw)))
			b = append(b, raw...)
		}
		str(v.TXT)
		b = append(b, boolByte(v.OwnTXT))
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	_, err := w.Write(b)
	return err
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// snapReader decodes the persisted form; the first error sticks.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: truncated", ErrSnapshotFile)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *snapReader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *snapReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *snapReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *snapReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// count reads an array length whose elements take size bytes each, and
// checks that they can be there.
func (r *snapReader) count(size uint64) int {
	n := r.u64()
	if r.err == nil && (n > math.MaxInt32 || n*size > uint64(len(r.b))) {
		r.err = fmt.Errorf("%w: array of %d longer than the file", ErrSnapshotFile, n)
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func (r *snapReader) str() string {
	n := r.u32()
	return string(r.take(uint64(n)))
}

func (r *snapReader) codes() []Codes {
	return fixedArray(r, 1, func(b []byte) Codes { return Codes(b[0]) })
}

func (r *snapReader) u32s() []uint32 { return fixedArray(r, 4, binary.LittleEndian.Uint32) }

// fixedArray reads an array of elements of size bytes each, decoded by
// get; nil when it is empty.
func fixedArray[T any](r *snapReader, size int, get func([]byte) T) []T {
	n := r.count(uint64(size))
	if n == 0 {
		return nil
	}
	out := make([]T, n)
	b := r.take(uint64(n) * uint64(size))
	for i := range out {
		out[i] = get(b[size*i:])
	}
	return out
}

func (r *snapReader) segs() []seg {
	n := r.count(22)
	if n == 0 {
		return nil
	}
	out := make([]seg, n)
	for i := range out {
		out[i] = seg{lo: r.u64(), hi: r.u64(), codes: Codes(r.u8()), excl: r.u8() == 1, val: r.u32()}
	}
	return out
}

// ReadSnapshot reads a snapshot written by WriteSnapshot, of at most max
// bytes (0: no limit).
func ReadSnapshot(rd io.Reader, max int64) (*Snapshot, error) {
	if max > 0 {
		rd = io.LimitReader(rd, max+1)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	if max > 0 && int64(len(data)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrSnapshotFile, max)
	}
	return decodeSnapshot(data)
}

func decodeSnapshot(data []byte) (*Snapshot, error) {
	if len(data) < len(snapMagic)+sha256.Size || string(data[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: not a blowback snapshot", ErrSnapshotFile)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(want[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (torn or damaged)", ErrSnapshotFile)
	}
	r := &snapReader{b: body[len(snapMagic):]}
	if v := r.u16(); v != snapVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrSnapshotFile, v, snapVersion)
	}
	s := &Snapshot{}
	s.Zone = r.str()
	s.TXT = r.str()
	s.Serial = r.u32()
	s.TTL = time.Duration(r.u64())
	if ns := int64(r.u64()); ns != 0 {
		s.Built = time.Unix(0, ns).UTC()
	}
	s.v4 = fixedArray(r, 2, binary.LittleEndian.Uint16)
	s.v4c = r.codes()
	s.v4v = r.u32s()
	s.idx4 = r.u32s()
	s.v6 = fixedArray(r, 8, binary.LittleEndian.Uint64)
	s.v6c = r.codes()
	s.v6v = r.u32s()
	s.r4 = r.segs()
	s.r6 = r.segs()
	if n := r.count(23); n > 0 {
		s.l6 = make([]long6, n)
		for i := range s.l6 {
			s.l6[i] = long6{hi: r.u64(), lo: r.u64(), bits: int(r.u8()), codes: Codes(r.u8()), excl: r.u8() == 1, val: r.u32()}
		}
	}
	n := r.count(13)
	s.vals = make([]Value, 0, n)
	for range n {
		var v Value
		na := r.count(5)
		for range na {
			l := r.u8()
			raw := r.take(uint64(l))
			a, ok := netip.AddrFromSlice(raw)
			if !ok && r.err == nil {
				r.err = fmt.Errorf("%w: bad address in a value", ErrSnapshotFile)
			}
			v.A = append(v.A, a)
		}
		v.TXT = r.str()
		v.OwnTXT = r.u8() == 1
		s.vals = append(s.vals, v)
		if r.err != nil {
			break
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the data", ErrSnapshotFile, len(r.b))
	}
	if len(s.vals) == 0 {
		s.vals = []Value{{}}
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshotFile, err)
	}
	return s, nil
}

// check verifies the structure lookups rely on.
func (s *Snapshot) check() error {
	if len(s.vals) == 0 || !s.vals[0].isZero() {
		return errors.New("value 0 is not the zero value")
	}
	nv := uint32(len(s.vals))
	vals := func(v []uint32, n int) error {
		if v == nil {
			return nil
		}
		if len(v) != n {
			return errors.New("value array of the wrong length")
		}
		for _, x := range v {
			if x >= nv {
				return errors.New("value index out of range")
			}
		}
		return nil
	}
	if len(s.v4c) != len(s.v4) || len(s.v6c) != len(s.v6) {
		return errors.New("code arrays of the wrong length")
	}
	if err := vals(s.v4v, len(s.v4)); err != nil {
		return err
	}
	if err := vals(s.v6v, len(s.v6)); err != nil {
		return err
	}
	if len(s.v4) == 0 {
		if len(s.idx4) != 0 && len(s.idx4) != 65537 {
			return errors.New("IPv4 index of the wrong length")
		}
	} else if len(s.idx4) != 65537 || s.idx4[0] != 0 || s.idx4[65536] != uint32(len(s.v4)) {
		return errors.New("IPv4 index does not cover the entries")
	}
	for h := 0; h+1 < len(s.idx4); h++ {
		lo, hi := s.idx4[h], s.idx4[h+1]
		if lo > hi || hi > uint32(len(s.v4)) {
			return errors.New("IPv4 index not increasing")
		}
		for i := lo + 1; i < hi; i++ {
			if s.v4[i-1] >= s.v4[i] {
				return errors.New("IPv4 entries not sorted")
			}
		}
	}
	for i := 1; i < len(s.v6); i++ {
		if s.v6[i-1] >= s.v6[i] {
			return errors.New("IPv6 entries not sorted")
		}
	}
	for _, r := range [][]seg{s.r4, s.r6} {
		for i, g := range r {
			if g.lo > g.hi || (i > 0 && r[i-1].hi >= g.lo) || g.val >= nv {
				return errors.New("ranges not disjoint and sorted")
			}
		}
	}
	for i, l := range s.l6 {
		if l.bits <= 64 || l.bits > 128 || l.val >= nv || (i > 0 && s.l6[i-1].hi > l.hi) {
			return errors.New("long IPv6 prefixes out of order")
		}
	}
	return nil
}

// SaveSnapshotFile writes s to path atomically (temp + fsync + rename).
func SaveSnapshotFile(path string, s *Snapshot) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteSnapshot(w, s) })
}

// LoadSnapshotFile reads a snapshot written by SaveSnapshotFile.
func LoadSnapshotFile(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshotFile, err)
	}
	return decodeSnapshot(data)
}
