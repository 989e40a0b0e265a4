package main

// ForwardConfig is the [forward] table (trap-only nodes, `blowback trap`).
type ForwardConfig struct{}

func defaultForwardConfig() ForwardConfig { return ForwardConfig{} }

func (f *ForwardConfig) validate() error { return nil }
