// Package signing signs zone exports and checks them, with detached
// Ed25519 signatures in minisign's format (aead.dev/minisign): the
// signature of FILE is FILE.minisig, prehashed (BLAKE2b-512, minisign's
// default since 0.8), and its trusted comment names the zone and the
// serial, so that an old export cannot pass for a new one:
//
//	trusted comment: timestamp:1767225600	file:bl.example.rbldnsd	zone:bl.example	serial:1767225600
//
// `minisign -V -P KEY -m FILE` accepts these signatures; blowback's own
// check (Verify) also requires the zone and serial in the trusted comment
// to match the export's header, when it has one.
package signing

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/blowback-dnsbl/blowback/zones"
)

// Errors.
var (
	// ErrKey: a key file or key string cannot be used.
	ErrKey = errors.New("signing: bad key")
	// ErrUnsigned: there is no signature next to the file.
	ErrUnsigned = errors.New("signing: no signature")
	// ErrBadSignature: the signature does not verify with the key, or is
	// not one of ours (no zone or serial in its trusted comment).
	ErrBadSignature = errors.New("signing: bad signature")
	// ErrMismatch: the signature verifies but what it vouches for (zone,
	// serial, kind of file) is not what the file says.
	ErrMismatch = errors.New("signing: signed for something else")
)

// Suffix is appended to a file's name for its signature (minisign's).
const Suffix = ".minisig"

// maxSig bounds a signature file read (minisign's trusted comments are at
// most 8 KiB).
const maxSig = 16 << 10

// PublicKey is a minisign public key (LoadPublicKey).
type PublicKey = minisign.PublicKey

// Signed is what a good signature vouches for.
type Signed struct {
	Zone      string
	Serial    uint32
	File      string    // the name the file was signed under (base name)
	Timestamp time.Time // when it was signed
	KeyID     string    // the key's ID, as minisign prints it
}

// Signer signs exports with one secret key.
type Signer struct {
	key minisign.PrivateKey
}

// GenerateKey writes a new key pair: the secret key to secret (mode 0600,
// never over an existing file) and the public key to secret + ".pub". The
// secret key is minisign's unencrypted format (as `minisign -G -W`
// writes); keep its file private.
func GenerateKey(secret string) (pub string, err error) {
	pk, sk, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	skText, err := sk.MarshalText()
	if err != nil {
		return "", err
	}
	pkText, err := pk.MarshalText()
	if err != nil {
		return "", err
	}
	pub = secret + ".pub"
	for _, p := range []string{secret, pub} {
		if _, err := os.Lstat(p); err == nil {
			return "", fmt.Errorf("%w: %s exists; not overwritten", ErrKey, p)
		}
	}
	f, err := os.OpenFile(secret, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(append(skText, '\n')); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(pub, append(pkText, '\n'), 0o644); err != nil {
		return "", err
	}
	return pub, nil
}

// LoadSigner reads an unencrypted minisign secret key file.
func LoadSigner(path string) (*Signer, error) {
	b, err := readBounded(path, 4<<10)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	var sk minisign.PrivateKey
	if err := sk.UnmarshalText(bytes.TrimSpace(b)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (blowback reads unencrypted keys: blowback keygen, or minisign -G -W)", ErrKey, path, err)
	}
	return &Signer{key: sk}, nil
}

// PublicKey is the signer's public key, as minisign's base64 string.
func (s *Signer) PublicKey() string {
	return s.key.Public().(minisign.PublicKey).String()
}

// SignFile signs the file at path as the export of zone at serial: it
// writes path + Suffix atomically. The file is read once (streamed).
func (s *Signer) SignFile(path, zone string, serial uint32) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := minisign.NewReader(f)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	trusted := fmt.Sprintf("timestamp:%d\tfile:%s\tzone:%s\tserial:%d", time.Now().Unix(),
		cleanName(filepath.Base(path)), zones.CanonicalZone(zone), serial)
	untrusted := "blowback export signature, key " + keyID(s.key.ID())
	sig := r.SignWithComments(s.key, trusted, untrusted)
	return zones.WriteFileAtomic(path+Suffix, func(w io.Writer) error {
		_, err := w.Write(sig)
		return err
	})
}

// cleanName keeps a trusted comment one line of tab-separated fields.
func cleanName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

func keyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// LoadPublicKey reads a public key: a minisign public key file, or the
// key itself as the base64 string minisign prints (RW...).
func LoadPublicKey(s string) (minisign.PublicKey, error) {
	var pk minisign.PublicKey
	if _, err := os.Stat(s); err != nil && strings.HasPrefix(s, "RW") {
		if err := pk.UnmarshalText([]byte(s)); err == nil {
			return pk, nil
		}
	}
	b, err := readBounded(s, 4<<10)
	if err != nil {
		return pk, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if err := pk.UnmarshalText(bytes.TrimSpace(b)); err != nil {
		return pk, fmt.Errorf("%w: %s: %v", ErrKey, s, err)
	}
	return pk, nil
}

// VerifyFile checks the file at path against path + Suffix.
func VerifyFile(pk minisign.PublicKey, path string) (Signed, error) {
	f, err := os.Open(path)
	if err != nil {
		return Signed{}, err
	}
	defer f.Close()
	return Verify(pk, f, path)
}

// Verify checks the open file f, named path, against path + Suffix: the
// signature must verify with pk (the file's bytes and the trusted
// comment), the trusted comment must name a zone and a serial, the signed
// file name must have path's extension (an rbldnsd export cannot pass for
// a BIND one), and an export header, when the file has one, must name
// the same zone and serial. f is read from its start to its end.
func Verify(pk minisign.PublicKey, f io.ReadSeeker, path string) (Signed, error) {
	raw, err := readBounded(path+Suffix, maxSig)
	if errors.Is(err, os.ErrNotExist) {
		return Signed{}, fmt.Errorf("%w: %s%s is missing", ErrUnsigned, path, Suffix)
	}
	if err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var sig minisign.Signature
	if err := sig.UnmarshalText(raw); err != nil {
		return Signed{}, fmt.Errorf("%w: %s%s: %v", ErrBadSignature, path, Suffix, err)
	}
	if sig.KeyID != pk.ID() {
		return Signed{}, fmt.Errorf("%w: signed with key %s, not %s", ErrBadSignature, keyID(sig.KeyID), keyID(pk.ID()))
	}
	if sig.Algorithm != minisign.HashEdDSA {
		// Legacy (not prehashed) signatures need the whole file in memory.
		return Signed{}, fmt.Errorf("%w: a legacy (not prehashed) signature", ErrBadSignature)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Signed{}, err
	}
	r := minisign.NewReader(f)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return Signed{}, err
	}
	if !r.Verify(pk, raw) {
		return Signed{}, fmt.Errorf("%w: %s does not match its signature", ErrBadSignature, path)
	}
	s, err := parseTrusted(sig.TrustedComment)
	if err != nil {
		return Signed{}, err
	}
	s.KeyID = keyID(sig.KeyID)
	if filepath.Ext(s.File) != filepath.Ext(path) {
		return s, fmt.Errorf("%w: signed as %q, checked as %q", ErrMismatch, s.File, filepath.Base(path))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return s, err
	}
	if h, err := zones.ReadHeader(f); err == nil && (zones.CanonicalZone(h.Zone) != s.Zone || h.Serial != s.Serial) {
		return s, fmt.Errorf("%w: the file says zone %s serial %d, the signature zone %s serial %d",
			ErrMismatch, h.Zone, h.Serial, s.Zone, s.Serial)
	}
	return s, nil
}

// parseTrusted reads blowback's fields from a (verified) trusted comment.
func parseTrusted(tc string) (Signed, error) {
	var s Signed
	var haveSerial bool
	for _, kv := range strings.Split(tc, "\t") {
		k, v, _ := strings.Cut(kv, ":")
		switch k {
		case "timestamp":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				s.Timestamp = time.Unix(n, 0).UTC()
			}
		case "file":
			s.File = v
		case "zone":
			s.Zone = zones.CanonicalZone(v)
		case "serial":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return s, fmt.Errorf("%w: serial %q in the trusted comment", ErrBadSignature, v)
			}
			s.Serial, haveSerial = uint32(n), true
		}
	}
	if s.Zone == "" || !haveSerial {
		return s, fmt.Errorf("%w: the trusted comment names no zone and serial (not a blowback export signature)", ErrBadSignature)
	}
	return s, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}
