package dnsd

import "github.com/miekg/dns"

// serveXFR answers AXFR and IXFR queries (TCP only). Until zone transfer is
// configured it refuses them (RFC 5936 §2.2.1 allows refusing).
func (s *Server) serveXFR(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	w.WriteMsg(m)
}
