package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The self-test table (package selftest: a listed operator proves a fix):
//
//	'T' fam addr time seq                   self-test outcome; value: version byte + JSON SelfTestRecord
//	    addr is the listing unit's address (IPv4 /32, IPv6 /64 base),
//	    time int64 unix nanoseconds of the outcome.
//
// Records carry the evidence retention as their TTL.
const pSelfTest = 'T'

// SelfTestRecord is the outcome of one operator self-test, kept per listing
// unit for the address's history.
type SelfTestRecord struct {
	ID       string       `json:"id"`
	Started  time.Time    `json:"started"`
	Time     time.Time    `json:"time"` // when the verdict was reached
	Unit     netip.Prefix `json:"unit"`
	Domain   string       `json:"domain"`
	Verdict  string       `json:"verdict"` // pass, fail, inconclusive, error
	Summary  string       `json:"summary"`
	Delisted bool         `json:"delisted,omitempty"`
}

// PutSelfTest stores a self-test outcome under its unit.
func (s *Store) PutSelfTest(ctx context.Context, r SelfTestRecord) error {
	if !r.Unit.IsValid() || r.Time.IsZero() {
		return fmt.Errorf("%w: self-test record without unit or time", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Time, r.Started, r.Unit = r.Time.UTC(), r.Started.UTC(), r.Unit.Masked()
	val, err := encodeJSON(r)
	if err != nil {
		return err
	}
	k := s.addrTimeKey(pSelfTest, r.Unit.Addr(), r.Time)
	if err := s.guard(int64(len(val))); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(s.ttlEntry(k, val, s.opts.Retention))
	})
}

// SelfTests returns the self-test outcomes stored for unit, newest first,
// at most limit (0: all).
func (s *Store) SelfTests(unit netip.Prefix, limit int) ([]SelfTestRecord, error) {
	var out []SelfTestRecord
	unit = unit.Masked()
	prefix := addrPrefixKey(pSelfTest, netip.PrefixFrom(unit.Addr(), unit.Addr().BitLen()))
	err := s.db.View(func(txn *badger.Txn) error {
		it := newestFirst(txn, prefix, 16)
		defer it.Close()
		for ; it.Valid(); it.Next() {
			if full, err := appendItem(&out, it.Item(), limit); err != nil || full {
				return err
			}
		}
		return nil
	})
	return out, err
}
