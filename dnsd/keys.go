package dnsd

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/atomicfile"
)

// Keyed access (issue 17): like the keyed services of large lists, a
// consumer puts its key as a label between the address and the zone,
// <reversed-ip>.<key>.<zone>. With Config.RequireKey the zone answers only
// keyed names with a known key within its budget; without it, keyed and
// plain names are both answered (keys then only count). A refused keyed
// query gets the policy's refusal (REFUSED or 127.255.255.253, with an
// Extended DNS Error). Keys are managed at run time (the admin API) and
// kept in a file; per-key counts are read with Top, never as metric labels.

// Errors of the key store.
var (
	ErrKey = errors.New("dnsd: bad key")
)

// Key lengths: longer than any address label (an octet has 3 characters,
// a nibble 1), short enough for a label.
const (
	minKeyLen = 8
	maxKeyLen = 63
)

// KeyInfo is one consumer key.
type KeyInfo struct {
	Key     string    `json:"key"`
	Note    string    `json:"note,omitempty"`   // who it is for
	Budget  int       `json:"budget,omitempty"` // queries per window; 0: no limit
	Created time.Time `json:"created"`
}

// KeyStat is a key with its counts.
type KeyStat struct {
	KeyInfo
	Queries uint64 `json:"queries"`        // since the process started
	Window  uint64 `json:"queries_window"` // in the current budget window
	Refused uint64 `json:"refused_over_quota"`
}

type keyState struct {
	info    KeyInfo
	total   atomic.Uint64
	win     atomic.Int64
	inWin   atomic.Uint64
	refused atomic.Uint64
}

// spent reports whether the budget of the window is used up (without
// counting: the fast path leaves a refusal to the slow path, which counts).
func (k *keyState) spent(win int64) bool {
	return k.info.Budget > 0 && k.win.Load() == win && k.inWin.Load() >= uint64(k.info.Budget)
}

// take counts one query and reports whether it is within the budget.
func (k *keyState) take(win int64) bool {
	if w := k.win.Load(); w != win && k.win.CompareAndSwap(w, win) {
		k.inWin.Store(0)
	}
	n := k.inWin.Add(1)
	if k.info.Budget > 0 && n > uint64(k.info.Budget) {
		k.refused.Add(1)
		return false
	}
	k.total.Add(1)
	return true
}

// Keys is the consumer key store. Lookups are lock-free (a copied map);
// changes are rare and written to the file before they take effect.
type Keys struct {
	path   string
	window time.Duration
	mu     sync.Mutex // serialises changes
	m      atomic.Pointer[map[string]*keyState]
}

// NewKeys returns the key store kept in path (created on the first change;
// "" keeps keys in memory only), with budgets per window (default 24h).
func NewKeys(path string, window time.Duration) (*Keys, error) {
	if window <= 0 {
		window = 24 * time.Hour
	}
	k := &Keys{path: path, window: window}
	m := map[string]*keyState{}
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		default:
			var infos []KeyInfo
			if err := json.Unmarshal(b, &infos); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrKey, path, err)
			}
			for _, in := range infos {
				if err := validKey(in.Key); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				m[in.Key] = &keyState{info: in}
			}
		}
	}
	k.m.Store(&m)
	return k, nil
}

func validKey(key string) error {
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return fmt.Errorf("%w: %d characters, want %d..%d", ErrKey, len(key), minKeyLen, maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: only a-z and 0-9", ErrKey)
		}
	}
	return nil
}

// lookup finds a key given as a wire label (any case), without allocating.
func (k *Keys) lookup(label []byte) *keyState {
	if len(label) < minKeyLen || len(label) > maxKeyLen {
		return nil
	}
	var low [maxKeyLen]byte
	for i, c := range label {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return (*k.m.Load())[string(low[:len(label)])]
}

func (k *Keys) windowOf(now time.Time) int64 { return now.UnixNano() / int64(k.window) }

// New makes a random key (20 characters of base 32) and stores it.
func (k *Keys) New(note string, budget int) (KeyInfo, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	in := KeyInfo{Key: string(b), Note: note, Budget: budget, Created: time.Now().UTC().Truncate(time.Second)}
	return in, k.Put(in)
}

// Put adds or replaces a key (its counts are kept when it existed).
func (k *Keys) Put(in KeyInfo) error {
	if err := validKey(in.Key); err != nil {
		return err
	}
	if in.Budget < 0 {
		return fmt.Errorf("%w: negative budget", ErrKey)
	}
	return k.change(func(m map[string]*keyState) {
		st := &keyState{info: in}
		if old := m[in.Key]; old != nil {
			st.total.Store(old.total.Load())
			st.win.Store(old.win.Load())
			st.inWin.Store(old.inWin.Load())
			st.refused.Store(old.refused.Load())
		}
		m[in.Key] = st
	})
}

// Delete removes a key; false when there was none.
func (k *Keys) Delete(key string) (bool, error) {
	found := false
	err := k.change(func(m map[string]*keyState) {
		_, found = m[key]
		delete(m, key)
	})
	return found, err
}

func (k *Keys) change(f func(map[string]*keyState)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := make(map[string]*keyState, len(*k.m.Load())+1)
	for key, v := range *k.m.Load() {
		m[key] = v
	}
	f(m)
	if k.path != "" {
		infos := make([]KeyInfo, 0, len(m))
		for _, v := range m {
			infos = append(infos, v.info)
		}
		slices.SortFunc(infos, func(a, b KeyInfo) int { return cmp.Compare(a.Key, b.Key) })
		b, _ := json.MarshalIndent(infos, "", "  ")
		err := atomicfile.Write(k.path, 0o600, func(w io.Writer) error {
			_, err := w.Write(append(b, '\n'))
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrKey, err)
		}
	}
	k.m.Store(&m)
	return nil
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(*k.m.Load()) }

// Top returns the n keys with the most queries (all keys when n <= 0),
// most first.
func (k *Keys) Top(n int) []KeyStat {
	m := *k.m.Load()
	out := make([]KeyStat, 0, len(m))
	win := k.windowOf(time.Now())
	for _, v := range m {
		st := KeyStat{KeyInfo: v.info, Queries: v.total.Load(), Refused: v.refused.Load()}
		if v.win.Load() == win {
			st.Window = v.inWin.Load()
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b KeyStat) int {
		if c := cmp.Compare(b.Queries, a.Queries); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
