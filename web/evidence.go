package web

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/blowback-dnsbl/blowback/store"
)

// EvidenceBatch is what trap nodes post.
type EvidenceBatch struct {
	Node   string        `json:"node"`
	Events []store.Event `json:"events"`
}

func (s *Server) nodeFor(token string) (string, bool) {
	found, ok := "", 0
	for node, t := range s.cfg.NodeTokens {
		if subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			found, ok = node, 1
		}
	}
	return found, ok == 1 && token != ""
}

func (s *Server) apiEvidence(w http.ResponseWriter, r *http.Request) {
	node, ok := s.nodeFor(bearer(r))
	if !ok {
		if tokenMatch(bearer(r), s.cfg.AdminTokens) {
			node, ok = "admin", true
		}
	}
	if !ok {
		s.metrics.authFailures.Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="blowback"`)
		jsonError(w, http.StatusUnauthorized, "node token required")
		return
	}
	var batch EvidenceBatch
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&batch); err != nil {
		jsonError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return
	}
	stored := 0
	for i := range batch.Events {
		ev := &batch.Events[i]
		ev.Node = node // the authenticated node, not what the body claims
		if err := ev.Validate(); err != nil {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("event %d: %v", i, err))
			return
		}
		if err := s.eng.Ingest(r.Context(), ev, nil); err != nil {
			s.log.Error("forwarded evidence", "err", err, "node", node)
			jsonError(w, http.StatusServiceUnavailable, "could not store evidence; retry")
			return
		}
		stored++
	}
	writeJSON(w, http.StatusOK, map[string]any{"accepted": stored})
}
