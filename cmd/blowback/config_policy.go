package main

import (
	"fmt"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// PolicyConfig is the [policy] table (docs/policy.md). Every key has a
// default; the defaults list on one fresh bounce.
type PolicyConfig struct {
	// Weights: kind name -> weight of one hit. Kinds not named keep their default.
	Weights         map[string]float64 `toml:"weights"`
	HalfLife        Duration           `toml:"half_life"`
	ListThreshold   float64            `toml:"list_threshold"`
	DelistThreshold float64            `toml:"delist_threshold"`
	MaxAge          Duration           `toml:"max_age"`
	SameAddress     float64            `toml:"same_address"`
	SameDomain      float64            `toml:"same_domain"`
	RepeatFactor    float64            `toml:"repeat_factor"`
	RepeatMax       float64            `toml:"repeat_max"`
	RepeatMemory    Duration           `toml:"repeat_memory"`
	Allow           []string           `toml:"allow"`
	Escalate        EscalateConfig     `toml:"escalate"`
}

// EscalateConfig is the [policy.escalate] table.
type EscalateConfig struct {
	Enabled bool `toml:"enabled"`
	Min     int  `toml:"min"`
	Bits4   int  `toml:"bits4"`
	Bits6   int  `toml:"bits6"`
}

func defaultPolicyConfig() PolicyConfig {
	p := scoring.DefaultPolicy()
	w := map[string]float64{}
	for k, v := range p.Weights {
		w[k.String()] = v
	}
	return PolicyConfig{
		Weights:         w,
		HalfLife:        Duration(p.HalfLife),
		ListThreshold:   p.ListThreshold,
		DelistThreshold: p.DelistThreshold,
		MaxAge:          Duration(p.MaxAge),
		SameAddress:     p.SameAddress,
		SameDomain:      p.SameDomain,
		RepeatFactor:    p.RepeatFactor,
		RepeatMax:       p.RepeatMax,
		RepeatMemory:    Duration(p.RepeatMemory),
		Escalate:        EscalateConfig{Min: p.Escalate.Min, Bits4: p.Escalate.Bits4, Bits6: p.Escalate.Bits6},
	}
}

func (p *PolicyConfig) build() (scoring.Policy, error) {
	pol := scoring.Policy{
		Weights:         scoring.DefaultWeights(),
		HalfLife:        time.Duration(p.HalfLife),
		ListThreshold:   p.ListThreshold,
		DelistThreshold: p.DelistThreshold,
		MaxAge:          time.Duration(p.MaxAge),
		SameAddress:     p.SameAddress,
		SameDomain:      p.SameDomain,
		RepeatFactor:    p.RepeatFactor,
		RepeatMax:       p.RepeatMax,
		RepeatMemory:    time.Duration(p.RepeatMemory),
		Escalate: scoring.Escalation{Enabled: p.Escalate.Enabled, Min: p.Escalate.Min,
			Bits4: p.Escalate.Bits4, Bits6: p.Escalate.Bits6},
	}
	for name, w := range p.Weights {
		k, err := store.ParseKind(name)
		if err != nil {
			return pol, fmt.Errorf("policy.weights: %v", err)
		}
		pol.Weights[k] = w
	}
	allow, err := prefixes("policy.allow", p.Allow)
	if err != nil {
		return pol, err
	}
	pol.Allow = append(pol.Allow, allow...)
	if err := pol.Validate(); err != nil {
		return pol, fmt.Errorf("policy: %w", err)
	}
	return pol, nil
}

func (p *PolicyConfig) validate() error {
	_, err := p.build()
	return err
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	Retention Duration `toml:"retention"`
	RawTTL    Duration `toml:"raw_ttl"`
	RawMax    int      `toml:"raw_max"`
	LowMemory bool     `toml:"low_memory"`
	// Bounded-memory knobs (0: the store's default, store.DefaultBlockCache for the block cache, or LowMemory's).
	MemTableMB   int      `toml:"memtable_mb"`
	BlockCacheMB int      `toml:"block_cache_mb"`
	IndexCacheMB int      `toml:"index_cache_mb"`
	GCInterval   Duration `toml:"gc_interval"`
	// MinFreeMB: below this much free space on the data filesystem writes are
	// refused (the trap answers 452) instead of badger crashing; 0: the
	// store's default reserve, -1: off.
	MinFreeMB int `toml:"min_free_mb"`
	// Per-unit caps (IPv4 address, IPv6 /64) per unit_window of event
	// time: events stored one by one (past it they are summarised by kind)
	// and raw-message MiB kept; 0: no cap.
	UnitWindow    Duration `toml:"unit_window"`
	UnitMaxEvents int      `toml:"unit_max_events"`
	UnitMaxRawMB  int      `toml:"unit_max_raw_mb"`
	// Per-network caps (IPv4 /24, IPv6 /48) per unit_window, after the
	// unit's: events stored in all the network's units (past it summarised,
	// but for each unit's first of each kind) and raw-message MiB kept; 0:
	// no cap.
	NetMaxEvents int `toml:"net_max_events"`
	NetMaxRawMB  int `toml:"net_max_raw_mb"`
}

func defaultStoreConfig() StoreConfig {
	o := store.DefaultOptions()
	return StoreConfig{
		Retention:  Duration(o.Retention),
		RawTTL:     Duration(o.RawTTL),
		RawMax:     o.RawMax,
		GCInterval: Duration(o.GCInterval),

		UnitWindow:    Duration(o.UnitWindow),
		UnitMaxEvents: o.UnitMaxEvents,
		UnitMaxRawMB:  int(o.UnitMaxRawBytes >> 20),
		NetMaxEvents:  o.NetMaxEvents,
		NetMaxRawMB:   int(o.NetMaxRawBytes >> 20),
	}
}

func (s *StoreConfig) validate() error {
	if s.MinFreeMB < -1 {
		return fmt.Errorf("store: min_free_mb must be -1 (off), 0 (default) or positive")
	}
	if s.RawMax < 0 || s.MemTableMB < 0 || s.BlockCacheMB < 0 || s.IndexCacheMB < 0 || s.UnitMaxEvents < 0 || s.UnitMaxRawMB < 0 || s.UnitWindow < 0 ||
		s.NetMaxEvents < 0 || s.NetMaxRawMB < 0 {
		return fmt.Errorf("store: sizes must not be negative")
	}
	return nil
}

func (c *Config) policy() (scoring.Policy, error) { return c.Policy.build() }

func (c *Config) storeOptions() store.Options {
	o := store.DefaultOptions()
	o.Retention = time.Duration(c.Store.Retention)
	o.RawTTL = time.Duration(c.Store.RawTTL)
	o.RawMax = c.Store.RawMax
	o.LowMemory = c.Store.LowMemory
	o.MemTableSize = int64(c.Store.MemTableMB) << 20
	o.BlockCacheSize = int64(c.Store.BlockCacheMB) << 20
	o.IndexCacheSize = int64(c.Store.IndexCacheMB) << 20
	switch {
	case c.Store.MinFreeMB > 0:
		o.MinFreeBytes = int64(c.Store.MinFreeMB) << 20
	case c.Store.MinFreeMB < 0:
		o.MinFreeBytes = -1
	}
	if c.Store.GCInterval > 0 {
		o.GCInterval = time.Duration(c.Store.GCInterval)
	}
	if c.Store.UnitWindow > 0 {
		o.UnitWindow = time.Duration(c.Store.UnitWindow)
	}
	o.UnitMaxEvents = c.Store.UnitMaxEvents
	o.UnitMaxRawBytes = int64(c.Store.UnitMaxRawMB) << 20
	o.NetMaxEvents = c.Store.NetMaxEvents
	o.NetMaxRawBytes = int64(c.Store.NetMaxRawMB) << 20
	return o
}
