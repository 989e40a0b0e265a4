package main

import (
	"errors"
	"time"

	"github.com/blowback-dnsbl/blowback/trap"
)

// TrapConfig is the [trap] table.
type TrapConfig struct {
	Hostname        string   `toml:"hostname"`
	Node            string   `toml:"node"`
	MaxMessageBytes int64    `toml:"max_message_bytes"`
	MaxRecipients   int      `toml:"max_recipients"`
	ReadTimeout     Duration `toml:"read_timeout"`
	WriteTimeout    Duration `toml:"write_timeout"`
	RejectAfterData bool     `toml:"reject_after_data"`
}

func defaultTrapConfig() TrapConfig {
	return TrapConfig{
		Hostname:        "blowback-trap",
		MaxMessageBytes: 10 << 20,
		MaxRecipients:   50,
		ReadTimeout:     Duration(60 * time.Second),
		WriteTimeout:    Duration(60 * time.Second),
	}
}

func (t *TrapConfig) validate() error {
	if t.MaxMessageBytes <= 0 || t.MaxRecipients <= 0 {
		return errors.New("trap limits must be positive")
	}
	return nil
}

// trapConfig is the trap listener's configuration.
func (c *Config) trapConfig() (trap.Config, error) {
	return trap.Config{Domains: c.TrapDomains, Hostname: c.Trap.Hostname, Node: c.Trap.Node,
		MaxMessageBytes: c.Trap.MaxMessageBytes, MaxRecipients: c.Trap.MaxRecipients,
		ReadTimeout: time.Duration(c.Trap.ReadTimeout), WriteTimeout: time.Duration(c.Trap.WriteTimeout),
		RejectAfterData: c.Trap.RejectAfterData}, nil
}
