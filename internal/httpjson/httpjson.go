// Package httpjson writes blowback's JSON answers in their one shape
// (indented JSON, no caching, no sniffing; errors as {"error": "..."}) and
// reads bearer tokens, for the web server and the evidence intake alike.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ErrorBody is the one JSON error shape.
type ErrorBody struct {
	Error string `json:"error"`
}

// Write answers code with v as JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Error answers code with {"error": msg}.
func Error(w http.ResponseWriter, code int, msg string) { Write(w, code, ErrorBody{Error: msg}) }

// Bearer is the token of an "Authorization: Bearer" header, or "".
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
