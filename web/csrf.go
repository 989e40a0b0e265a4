package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
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
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: cross-site form submission refused", ErrForbidden)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	if pu, err := url.Parse(s.cfg.PublicURL); err == nil && pu.Host != "" && strings.EqualFold(u.Host, pu.Host) && u.Scheme == pu.Scheme {
		return nil
	}
	return fmt.Errorf("%w: cross-site form submission refused", ErrForbidden)
}
