package trap

import "github.com/blowback-dnsbl/blowback/classify"

// fillEnvelope adds what the server knows beyond the transaction to the
// classifier's envelope: the trap domains, so the classifier can tell which
// address in a returned message was the trap.
func (ss *session) fillEnvelope(env classify.Envelope) classify.Envelope {
	env.TrapDomains = ss.srv.cfg.Domains
	return env
}
