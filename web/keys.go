package web

import "net/http"

// keyRoutes mounts the DNS consumer-key admin API (dnsd.Keys.Handler, when
// keyed access is on) behind the admin token.
func (s *Server) keyRoutes(h func(pattern, name string, fn http.HandlerFunc)) {
	if s.cfg.DNSKeys == nil {
		return
	}
	h("/api/v1/admin/dns/keys", "api_admin", s.admin(s.cfg.DNSKeys.ServeHTTP))
	h("/api/v1/admin/dns/keys/{key}", "api_admin", s.admin(s.cfg.DNSKeys.ServeHTTP))
}
