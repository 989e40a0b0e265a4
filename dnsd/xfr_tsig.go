package dnsd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TSIG (RFC 8945) for transfers and for the signed queries of secondaries.
// dns.Server verifies TSIG only when it is given the keys when it starts;
// transfers are configured later, so the request is verified here from its
// re-packed form (a client that compressed names differently from miekg/dns
// is tried both ways: the MAC covers the exact bytes).

var (
	errBadKey = errors.New("dnsd: TSIG key unknown or algorithm mismatch")
)

// signer signs the responses to one signed request.
type signer struct {
	key    TSIGKey
	reqMAC string // the request's MAC, then the previous response's
	first  bool
}

// verify checks req's TSIG. It returns a nil signer for an unsigned
// request and an error when the signature is bad.
func (t *transfer) verify(req *dns.Msg) (*signer, error) {
	ts := req.IsTsig()
	if ts == nil {
		return nil, nil
	}
	key, ok := t.keys[strings.ToLower(ts.Hdr.Name)]
	if !ok || !strings.EqualFold(dns.Fqdn(ts.Algorithm), key.Algorithm) {
		return nil, fmt.Errorf("%w: %s %s", errBadKey, ts.Hdr.Name, ts.Algorithm)
	}
	var last error
	for _, compress := range []bool{true, false} {
		m := req.Copy()
		m.Compress = compress
		buf, err := m.Pack()
		if err != nil {
			return nil, err
		}
		if last = dns.TsigVerify(buf, key.Secret, "", false); last == nil {
			return &signer{key: key, reqMAC: ts.MAC, first: true}, nil
		}
		if errors.Is(last, dns.ErrTime) {
			break
		}
	}
	return nil, last
}

// send writes m, signed when the request was (each message of a transfer
// chains the previous MAC, RFC 8945 §5.3.1).
func (sg *signer) send(w dns.ResponseWriter, m *dns.Msg) error {
	if sg == nil {
		return w.WriteMsg(m)
	}
	m.SetTsig(sg.key.Name, sg.key.Algorithm, 300, time.Now().Unix())
	buf, mac, err := dns.TsigGenerate(m, sg.key.Secret, sg.reqMAC, !sg.first)
	if err != nil {
		return err
	}
	sg.reqMAC, sg.first = mac, false
	_, err = w.Write(buf)
	return err
}

// tsigError is the unsigned NOTAUTH answer to a request whose TSIG failed
// (RFC 8945 §5.2), with the TSIG error code.
func tsigError(req *dns.Msg, err error) []byte {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeNotAuth)
	ts := req.IsTsig()
	code := uint16(dns.RcodeBadSig)
	switch {
	case errors.Is(err, errBadKey):
		code = dns.RcodeBadKey
	case errors.Is(err, dns.ErrTime):
		code = dns.RcodeBadTime
	}
	m.Extra = append(m.Extra, &dns.TSIG{
		Hdr:        dns.RR_Header{Name: ts.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  ts.Algorithm,
		TimeSigned: uint64(time.Now().Unix()),
		Fudge:      300,
		OrigId:     req.Id,
		Error:      code,
	})
	buf, perr := m.Pack()
	if perr != nil {
		m.Extra = nil
		buf, _ = m.Pack()
	}
	return buf
}
