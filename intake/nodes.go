package intake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/store"
)

type revocation struct {
	Node   string    `json:"node"`
	SHA256 string    `json:"sha256"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason,omitempty"`
}

// ParseNodeTokens reads "node token" lines (# starts a comment).
func ParseNodeTokens(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) != 2:
			return nil, fmt.Errorf("%w: line %d: want \"node token\"", ErrTokens, n)
		case !ValidNodeID(f[0]):
			return nil, fmt.Errorf("%w: line %d: node id %q: want 1 to 64 of A-Z a-z 0-9 . _ -", ErrTokens, n, f[0])
		case f[0] == adminNode:
			return nil, fmt.Errorf("%w: line %d: %q is reserved for admin posts", ErrTokens, n, adminNode)
		case len(f[1]) < 16:
			return nil, fmt.Errorf("%w: line %d: token of node %q shorter than 16 characters", ErrTokens, n, f[0])
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%w: line %d: node %q twice", ErrTokens, n, f[0])
		}
		out[f[0]] = f[1]
	}
	return out, sc.Err()
}

// ValidNodeID reports whether id can name a trap node: 1 to 64 letters,
// digits, dots, underscores and hyphens (it appears in logs and as a
// metric label value).
func ValidNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// reloadLocked re-reads the tokens file when its size or mtime changed, at
// most once a second unless force. A bad file keeps the previous tokens.
func (in *Intake) reloadLocked(force bool) error {
	now := in.now()
	if in.cfg.TokensFile == "" || (!force && now.Sub(in.checked) < time.Second) {
		return nil
	}
	in.checked = now
	fi, err := os.Stat(in.cfg.TokensFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && in.file != nil {
			in.log.Warn("node tokens file removed: its nodes are refused", "file", in.cfg.TokensFile)
			in.file, in.fileStamp = nil, ""
		}
		return err
	}
	stamp := fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
	if stamp == in.fileStamp {
		return nil
	}
	f, err := os.Open(in.cfg.TokensFile)
	if err != nil {
		return err
	}
	defer f.Close()
	toks, err := ParseNodeTokens(f)
	if err != nil {
		return err
	}
	in.file, in.fileStamp = toks, stamp
	in.log.Info("node tokens loaded", "file", in.cfg.TokensFile, "nodes", len(toks))
	return nil
}

// refreshLocked re-reads the tokens file if due and the revocations once.
func (in *Intake) refreshLocked() error {
	if err := in.reloadLocked(false); err != nil && !errors.Is(err, os.ErrNotExist) {
		in.log.Error("node tokens file; keeping the previous tokens", "file", in.cfg.TokensFile, "err", err)
	}
	return in.loadRevokedLocked()
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// readRevocations reads the revoked node tokens stored in st (none yet:
// an empty list).
func readRevocations(st Store) ([]revocation, error) {
	b, err := st.GetMeta(metaRevoked)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var list []revocation
	if len(b) > 0 {
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("intake: revoked node tokens: %w", err)
		}
	}
	return list, nil
}

// loadRevokedLocked reads the revocations from the store once.
func (in *Intake) loadRevokedLocked() error {
	if in.st == nil || (in.loaded && (in.cfg.Revocations == nil || in.now().Sub(in.revRead) < revocationsFresh)) {
		return nil
	}
	in.revRead = in.now()
	list, err := readRevocations(in.st)
	if err != nil {
		return err
	}
	in.revoked = map[string]revocation{}
	for _, r := range list {
		in.revoked[r.SHA256] = r
	}
	in.loaded = true
	return nil
}

// tokensLocked is every configured (node, token) pair, file entries last.
func (in *Intake) tokensLocked() [][2]string {
	var out [][2]string
	for n, t := range in.static {
		out = append(out, [2]string{n, t})
	}
	for n, t := range in.file {
		out = append(out, [2]string{n, t})
	}
	return out
}

// authenticate returns the node that tok belongs to. Every configured token
// is compared, in constant time, whatever matches first.
func (in *Intake) authenticate(tok string) (node string, ok bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.refreshLocked(); err != nil {
		return "", false, err
	}
	match := 0
	for _, nt := range in.tokensLocked() {
		if nt[1] == "" {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(nt[1])) == 1 {
			node, match = nt[0], 1
		}
	}
	if tok == "" || match == 0 {
		return "", false, nil
	}
	if _, gone := in.revoked[tokenHash(tok)]; gone {
		in.log.Warn("revoked node token used", "node", node)
		return "", false, nil
	}
	return node, true, nil
}

// NodeInfo is a trap node as the admin API shows it (never its token).
type NodeInfo struct {
	Node     string     `json:"node"`
	Source   string     `json:"source"` // "config" or "file"
	Revoked  bool       `json:"revoked"`
	LastSeen *time.Time `json:"last_seen"` // last accepted batch since this process started
	Accepted int64      `json:"accepted"`  // events accepted since this process started
}

// Nodes lists the configured trap nodes, by id.
func (in *Intake) Nodes() ([]NodeInfo, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.refreshLocked(); err != nil {
		return nil, err
	}
	out := []NodeInfo{}
	add := func(src string, m map[string]string) {
		for n, t := range m {
			ns := in.seen[n]
			_, rev := in.revoked[tokenHash(t)]
			var last *time.Time
			if !ns.last.IsZero() {
				u := ns.last.UTC().Truncate(time.Second)
				last = &u
			}
			out = append(out, NodeInfo{Node: n, Source: src, Revoked: rev, LastSeen: last, Accepted: ns.accepted})
		}
	}
	add("config", in.static)
	add("file", in.file)
	sort.Slice(out, func(i, j int) bool {
		return out[i].Node < out[j].Node || (out[i].Node == out[j].Node && out[i].Source < out[j].Source)
	})
	return out, nil
}

// Revoke refuses from now on every current token of node, and returns how
// many were revoked (0: the node has no unrevoked token).
func (in *Intake) Revoke(ctx context.Context, node, reason string) (int, error) {
	if in.cfg.Revocations != nil {
		return in.revokeViaLog(ctx, node, reason)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.loadRevokedLocked(); err != nil {
		return 0, err
	}
	if in.st == nil {
		return 0, errNoStore
	}
	now := in.now().UTC()
	next := map[string]revocation{}
	for k, v := range in.revoked {
		next[k] = v
	}
	n := 0
	for _, nt := range in.tokensLocked() {
		if nt[0] != node || nt[1] == "" {
			continue
		}
		h := tokenHash(nt[1])
		if _, ok := next[h]; !ok {
			next[h] = revocation{Node: node, SHA256: h, Time: now, Reason: reason}
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	list := make([]revocation, 0, len(next))
	for _, v := range next {
		list = append(list, v)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].SHA256 < list[j].SHA256 })
	b, err := json.Marshal(list)
	if err != nil {
		return 0, err
	}
	if err := in.st.SetMeta(metaRevoked, b); err != nil {
		return 0, err
	}
	in.revoked = next
	if err := in.st.Audit(ctx, store.AuditEntry{Time: now, Who: "admin", Action: "revoke-node", Target: node, Reason: reason,
		Detail: fmt.Sprintf("%d token(s)", n)}); err != nil {
		in.log.Error("audit", "err", err)
	}
	in.log.Warn("node token revoked", "node", node, "tokens", n)
	return n, nil
}

// ServeNodes answers GET /api/v1/admin/nodes; the caller checks the admin
// token.
func (in *Intake) ServeNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := in.Nodes()
	if err != nil {
		in.log.Error("admin nodes", "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "internal error")
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"nodes": nodes})
}

// ServeRevoke answers POST /api/v1/admin/nodes/{node}/revoke with an
// optional JSON body {"reason": "..."}; the caller checks the admin token.
func (in *Intake) ServeRevoke(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	var req struct {
		Reason string `json:"reason"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return
	}
	n, err := in.Revoke(r.Context(), node, strings.TrimSpace(req.Reason))
	if err != nil {
		in.log.Error("revoke node", "err", err, "node", node)
		httpjson.Error(w, http.StatusInternalServerError, "internal error")
		return
	}
	if n == 0 {
		httpjson.Error(w, http.StatusNotFound, "no unrevoked token for node "+node)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"node": node, "revoked": n})
}
