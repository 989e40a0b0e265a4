package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/blowback-dnsbl/blowback/internal/netx"
	"github.com/blowback-dnsbl/blowback/listing"
)

// The admin allowlist API: GET lists the effective allowlist (configured
// and admin-added networks), POST adds or removes a network with a reason.
// On a cluster replica the change goes through the log (listing.Log) and
// shows on every replica.

func (s *Server) allowRoutes(h func(pattern, name string, fn http.HandlerFunc)) {
	h("GET /api/v1/admin/allow", "api_admin", s.admin(s.apiAllowList))
	h("POST /api/v1/admin/allow", "api_admin", s.admin(s.jsonPost(s.apiAllowChange)))
}

func (s *Server) apiAllowList(w http.ResponseWriter, r *http.Request) {
	list, err := s.eng.Allowlist()
	if err != nil {
		s.log.Error("admin allowlist", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"allow": list})
}

type allowRequest struct {
	Op      string `json:"op"`      // "add" or "remove"
	Network string `json:"network"` // a prefix (192.0.2.0/24) or an address
	Reason  string `json:"reason"`
	Who     string `json:"who"`
}

func (s *Server) apiAllowChange(w http.ResponseWriter, r *http.Request) {
	var req allowRequest
	if err := decodeJSON(w, r, &req); err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	p, err := netx.ParsePrefix(req.Network)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "network: want a prefix like 192.0.2.0/24 or an address")
		return
	}
	c := listing.AllowChange{Op: req.Op, Prefix: p, Who: "admin", Reason: req.Reason}
	if req.Who != "" {
		c.Who = "admin:" + req.Who
	}
	if err := s.eng.ChangeAllow(r.Context(), c); err != nil {
		if errors.Is(err, listing.ErrAllow) {
			jsonError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "listing: "))
			return
		}
		s.log.Error("admin allowlist change", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"op": req.Op, "network": p.Masked().String()})
}
