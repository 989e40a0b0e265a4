package main

import (
	"fmt"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// PolicyConfig is the [policy] table.
type PolicyConfig struct {
	MaxAge Duration `toml:"max_age"`
	Allow  []string `toml:"allow"`
}

func defaultPolicyConfig() PolicyConfig {
	return PolicyConfig{MaxAge: Duration(28 * 24 * time.Hour)}
}

func (p *PolicyConfig) validate() error {
	for _, a := range p.Allow {
		if _, err := parsePrefix(a); err != nil {
			return fmt.Errorf("policy.allow: %v", err)
		}
	}
	return nil
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	Retention Duration `toml:"retention"`
	RawTTL    Duration `toml:"raw_ttl"`
	RawMax    int      `toml:"raw_max"`
	LowMemory bool     `toml:"low_memory"`
}

func defaultStoreConfig() StoreConfig {
	return StoreConfig{
		Retention: Duration(400 * 24 * time.Hour),
		RawTTL:    Duration(30 * 24 * time.Hour),
		RawMax:    256 << 10,
	}
}

func (s *StoreConfig) validate() error { return nil }

func (c *Config) policy() (scoring.Policy, error) {
	p := scoring.DefaultPolicy()
	if c.Policy.MaxAge > 0 {
		p.MaxAge = time.Duration(c.Policy.MaxAge)
	}
	for _, a := range c.Policy.Allow {
		pr, err := parsePrefix(a)
		if err != nil {
			return p, err
		}
		p.Allow = append(p.Allow, pr)
	}
	return p, nil
}

func (c *Config) storeOptions() store.Options {
	o := store.DefaultOptions()
	o.Retention = time.Duration(c.Store.Retention)
	o.RawTTL = time.Duration(c.Store.RawTTL)
	o.RawMax = c.Store.RawMax
	o.LowMemory = c.Store.LowMemory
	return o
}
