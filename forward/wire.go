// Package forward carries evidence from trap-only nodes to a central node.
//
// A trap node (`blowback trap --forward URL --token T`) classifies locally
// and commits every event to its Spool, a small badger queue in its data
// directory, before the SMTP 250. A Forwarder drains the spool in batches to
// the central node's POST /api/v1/evidence, retrying with exponential backoff
// and jitter while the central node is away; an event leaves the spool only
// after the central node acknowledged it. Delivery is at-least-once: the
// central node stores events idempotently by their id (minted by the trap),
// so a batch sent twice is counted once.
//
// # Protocol
//
//	POST /api/v1/evidence HTTP/1.1
//	Authorization: Bearer <node token>
//	Content-Type: application/json
//	Content-Encoding: gzip            (optional)
//	Idempotency-Key: <id of the first event>-<number of events>
//
//	{"node": "trap-1", "events": [store.Event...], "raw": {"<event id>": "<base64 message>"}}
//
// The central node answers 200 with a Result once every accepted event is
// durable; events it finds invalid are listed in Result.Rejected (the trap
// moves them to its dead-letter queue instead of retrying them forever).
// 400 and 413 answers make the trap split the batch; 401 and 403 mean the
// token is wrong or revoked; anything else (and any transport error) is
// retried (503 with Retry-After also when the central node has too many
// batches in flight). The node id in the body is informational: the
// central node records the node the token belongs to (store.Event.Node).
//
// The types below are the one definition of the wire format: the trap's
// Forwarder writes them, package intake (the central node's side) and
// `blowback import` (posting through a running node) use them too.
package forward

import (
	"encoding/json"

	"github.com/blowback-dnsbl/blowback/store"
)

// Path is where the central node takes evidence.
const Path = "/api/v1/evidence"

// Batch is the body of POST /api/v1/evidence, as the central node reads it.
type Batch struct {
	Node   string        `json:"node,omitempty"`
	Events []store.Event `json:"events"`
	// Raw holds the raw message of some events, by event id.
	Raw map[string][]byte `json:"raw,omitempty"`
}

// Result is the central node's answer to a batch.
type Result struct {
	// Accepted counts events now durable on the central node, duplicates
	// of events it already had included.
	Accepted int `json:"accepted"`
	// Rejected lists events that were invalid; they will never be accepted.
	Rejected []Rejection `json:"rejected,omitempty"`
}

// Rejection names an invalid event.
type Rejection struct {
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

// outBatch is Batch as the trap writes it: events are passed through as
// spooled, without decoding.
type outBatch struct {
	Node   string            `json:"node,omitempty"`
	Events []json.RawMessage `json:"events"`
	Raw    map[string][]byte `json:"raw,omitempty"`
}
