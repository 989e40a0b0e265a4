package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The delist form is protected against cross-site request forgery twice
// (OWASP CSRF cheat sheet): a signed double-submit token, and a check that
// the request's Origin (or, failing that, Referer) is this site.
//
// The cookie holds a random value; the form's hidden token is
// time || HMAC(key, "delist" || cookie || time), so a token is valid only
// with the cookie it was made for, for csrfMaxAge.
const (
	csrfCookie = "blowback_form"
	csrfMaxAge = 2 * time.Hour
)

// formCookie returns the form cookie's value, setting a new one on w when
// the request has none.
func (s *Server) formCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 22 && len(c.Value) <= 64 {
		return c.Value
	}
	var b [18]byte
	rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
		Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	return v
}

func (s *Server) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.PublicURL, "https://")
}

func (s *Server) csrfMAC(cookie string, ts int64) []byte {
	m := hmac.New(sha256.New, s.csrfKey)
	fmt.Fprintf(m, "delist\x00%s\x00%d", cookie, ts)
	return m.Sum(nil)[:16]
}

// csrfToken makes the hidden form token for cookie.
func (s *Server) csrfToken(cookie string) string {
	ts := s.now().Unix()
	b := binary.BigEndian.AppendUint64(nil, uint64(ts))
	return base64.RawURLEncoding.EncodeToString(append(b, s.csrfMAC(cookie, ts)...))
}

// checkForm verifies a form post: same origin, cookie and token. The
// error is shown to the user.
func (s *Server) checkForm(r *http.Request) error {
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return fmt.Errorf("%w: the form cookie is missing; allow cookies for this site and submit the form again", ErrForbidden)
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("token"))
	if err != nil || len(raw) != 8+16 {
		return fmt.Errorf("%w: the form token is missing or damaged; reload the page and submit again", ErrForbidden)
	}
	ts := int64(binary.BigEndian.Uint64(raw[:8]))
	age := s.now().Sub(time.Unix(ts, 0))
	if !hmac.Equal(raw[8:], s.csrfMAC(c.Value, ts)) {
		return fmt.Errorf("%w: the form token does not match this browser; reload the page and submit again", ErrForbidden)
	}
	if age > csrfMaxAge || age < -time.Minute {
		return fmt.Errorf("%w: the form has expired; reload the page and submit again", ErrForbidden)
	}
	return nil
}

// checkOrigin accepts a request whose Origin, or failing that Referer,
// names this site: the Host asked for or the configured public URL.
func (s *Server) checkOrigin(r *http.Request) error {
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return fmt.Errorf("%w: the request carries neither Origin nor Referer; submit the form from this site", ErrForbidden)
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" || !s.ownHost(u, r) {
		return fmt.Errorf("%w: cross-site form submission refused", ErrForbidden)
	}
	return nil
}

// jsonPost guards a state-changing JSON endpoint against cross-site
// requests (CONTRACT.md "Additions": POST endpoints that take JSON require
// Content-Type: application/json). A web page can make a browser post a
// form or a text/plain body anywhere without asking; a JSON content type
// from another origin needs a CORS preflight, which this server never
// grants. So: a body of any other type is refused with 415, and so is a
// request a browser marks as coming from another site (a foreign or
// "null" Origin, Sec-Fetch-Site cross-site or same-site) with 403.
// Clients that are not browsers send no Origin and pass.
func (s *Server) jsonPost(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				jsonError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return
			}
		}
		if err := s.checkAPIOrigin(r); err != nil {
			jsonError(w, http.StatusForbidden, strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": "))
			return
		}
		h(w, r)
	}
}

// checkAPIOrigin refuses a request a browser says comes from another site.
func (s *Server) checkAPIOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return fmt.Errorf("%w: cross-site request refused", ErrForbidden)
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || !s.ownHost(u, r) {
		return fmt.Errorf("%w: cross-site request refused (Origin %q)", ErrForbidden, truncate(o, 100))
	}
	return nil
}

// ownHost reports whether u names this site: the Host asked for, or the
// configured public URL (same scheme).
func (s *Server) ownHost(u *url.URL, r *http.Request) bool {
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	pu, err := url.Parse(s.cfg.PublicURL)
	return err == nil && pu.Host != "" && strings.EqualFold(u.Host, pu.Host) && u.Scheme == pu.Scheme
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
