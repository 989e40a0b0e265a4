package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// RevocationLog is the replicated log a cluster replica writes node
// revocations through (package cluster): every replica applies them with
// ApplyRevocation, so a node revoked on one replica is refused by all.
type RevocationLog interface {
	// AppendRevocation returns once the cluster has the revocation
	// durably and, within a short bound, this replica applied it.
	AppendRevocation(ctx context.Context, id, node string, sha256 []string, reason string) error
}

// revokeViaLog is Revoke on a cluster replica: the hashes of node's
// current unrevoked tokens go to the log; the revocation takes effect here
// when the replica applies it (ApplyRevocation).
func (in *Intake) revokeViaLog(ctx context.Context, node, reason string) (int, error) {
	in.mu.Lock()
	if err := in.refreshLocked(); err != nil {
		in.mu.Unlock()
		return 0, err
	}
	var hashes []string
	for _, nt := range in.tokensLocked() {
		if nt[0] != node || nt[1] == "" {
			continue
		}
		if h := tokenHash(nt[1]); in.revoked[h].SHA256 == "" {
			hashes = append(hashes, h)
		}
	}
	in.mu.Unlock()
	if len(hashes) == 0 {
		return 0, nil
	}
	sort.Strings(hashes)
	if err := in.cfg.Revocations.AppendRevocation(ctx, store.NewEventID().String(), node, hashes, reason); err != nil {
		return 0, err
	}
	in.mu.Lock()
	in.loaded = false // read what the apply stored
	in.mu.Unlock()
	return len(hashes), nil
}

// revocationsFresh is how long a replica's intake trusts the revocations
// it read from its store: the apply of the log writes them there.
const revocationsFresh = time.Second

// ApplyRevocation records a revocation from the log in st (the store of a
// cluster replica): the tokens with the given SHA-256 are refused from time
// t on. Applying it again changes nothing. The intake of the replica reads
// it from the store within a second.
func ApplyRevocation(ctx context.Context, st Store, id, node string, sha256 []string, reason string, t time.Time) error {
	list, err := readRevocations(st)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, r := range list {
		have[r.SHA256] = true
	}
	n := 0
	for _, h := range sha256 {
		if len(h) != 64 || have[h] {
			continue
		}
		have[h] = true
		list = append(list, revocation{Node: node, SHA256: h, Time: t.UTC(), Reason: reason})
		n++
	}
	if n == 0 {
		return nil
	}
	sort.Slice(list, func(i, j int) bool { return list[i].SHA256 < list[j].SHA256 })
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := st.SetMeta(metaRevoked, b); err != nil {
		return err
	}
	return st.Audit(ctx, store.AuditEntry{Time: t.UTC(), Who: "admin", Action: "revoke-node", Target: node, Reason: reason,
		Detail: fmt.Sprintf("%d token(s), log change %s", n, id)})
}
