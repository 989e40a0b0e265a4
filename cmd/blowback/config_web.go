package main

import "github.com/blowback-dnsbl/blowback/web"

// WebConfig is the [web] table.
type WebConfig struct{}

func defaultWebConfig() WebConfig { return WebConfig{} }

func (w *WebConfig) validate() error { return nil }

// webConfig is the HTTP server's configuration.
func (c *Config) webConfig(adminTokens []string) web.Config {
	return web.Config{AdminTokens: adminTokens, NodeTokens: c.NodeTokens, PublicURL: c.publicURL(), SOA: c.soa()}
}
