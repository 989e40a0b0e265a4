package trap

import "github.com/blowback-dnsbl/blowback/classify"

// The trap classifies what it receives with package classify; these names
// keep the session's code short.
type (
	// Envelope is what the SMTP session knew about a message.
	Envelope = classify.Envelope
	// Result is what the classifier made of a message.
	Result = classify.Result
)

// Classify runs the classifier (see classify.Classify). A recovered panic
// comes back as a result with Recovered set.
func Classify(msg []byte, env Envelope) Result { return classify.Classify(msg, env) }

// fillEnvelope adds what the server knows beyond the transaction to the
// classifier's envelope: the trap domains, so the classifier can tell which
// address in a returned message was the trap.
func (ss *session) fillEnvelope(env Envelope) Envelope {
	env.TrapDomains = ss.srv.cfg.Domains
	return env
}
