package dnsd

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/blowback-dnsbl/blowback/internal/httpjson"
)

// Handler is the admin API of the key store, for the HTTP server to mount
// behind its admin authentication at /api/v1/admin/dns/keys:
//
//	GET    /api/v1/admin/dns/keys?top=N  keys with counts, most queries first (N default 100, at most 10000)
//	POST   /api/v1/admin/dns/keys        {"note": "...", "budget": N} makes a key; {"key": "..."} sets that one
//	DELETE /api/v1/admin/dns/keys/{key}  removes a key
//
// Per-key counts are read here, not as metric labels (their number is not
// bounded).
func (k *Keys) Handler() http.Handler { return http.HandlerFunc(k.serveHTTP) }

const maxKeysTop = 10000

func (k *Keys) serveHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	switch {
	case r.Method == http.MethodGet && key == "":
		n := 100
		if v := r.URL.Query().Get("top"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				httpjson.Error(w, http.StatusBadRequest, "top: want a positive number")
				return
			}
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"keys": k.Top(min(n, maxKeysTop)), "total": k.Len()})
	case r.Method == http.MethodPost && key == "":
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			httpjson.Error(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
		var req struct {
			Key    string `json:"key"`
			Note   string `json:"note"`
			Budget int    `json:"budget"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			httpjson.Error(w, http.StatusBadRequest, "bad JSON body")
			return
		}
		if len(req.Note) > 200 {
			httpjson.Error(w, http.StatusBadRequest, "note: at most 200 bytes")
			return
		}
		var (
			in  KeyInfo
			err error
		)
		if req.Key == "" {
			in, err = k.New(req.Note, req.Budget)
		} else {
			in = KeyInfo{Key: req.Key, Note: req.Note, Budget: req.Budget}
			err = k.Put(in)
		}
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrKey) && in.Key == req.Key {
				code = http.StatusBadRequest
			}
			httpjson.Error(w, code, err.Error())
			return
		}
		httpjson.Write(w, http.StatusCreated, in)
	case r.Method == http.MethodDelete && key != "":
		found, err := k.Delete(key)
		switch {
		case err != nil:
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
		case !found:
			httpjson.Error(w, http.StatusNotFound, "no such key")
		default:
			httpjson.Write(w, http.StatusOK, map[string]string{"deleted": key})
		}
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpjson.Error(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}
