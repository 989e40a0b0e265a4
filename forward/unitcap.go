package forward

import (
	"net/netip"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lru"
	"github.com/blowback-dnsbl/blowback/store"
)

// Per-unit and per-network caps at the spool.
//
// The spool's own bound (MaxEvents) is global: without more, one flooding
// source fills it and the trap answers 451 to every other source until the
// forwarder has drained it, and the flood costs disk and bandwidth for
// evidence the central store would only summarise (store/unitcap.go). So
// the spool applies the store's rule itself (store.Caps.Admit), per
// unit (IPv4 address, IPv6 /64) and window of event time (an hour): at most
// UnitMaxEvents events are spooled one by one, at most UnitMaxRawBytes of
// their raw messages (as spooled: uncompressed, so this cap bites before the
// store's, which counts compressed bytes); past the raw cap an event is
// spooled without its raw message.
//
// Past the event cap the event is dropped, not spooled without its raw
// message: an event record still costs a slot of MaxEvents, so spooling
// them all would leave the hole open. Dropping keeps the central listing
// decision as it would have been: the store keeps at most UnitMaxEvents of
// a unit's events per window and only counts the rest in its summary, and
// scoring reads the stored events; the spool forwards exactly those (the
// first UnitMaxEvents of the window, and as in the store the first event of
// each kind past the cap, without its raw message, so that scoring still
// sees every kind the unit sent). What central no longer learns is how many
// more there were: blowback_forward_spool_capped_total{action="dropped"}
// counts them on the trap node. A trap node's caps should therefore be at
// least the central store's (the defaults are the same: 500 events, 16
// MiB); smaller ones mean central stores fewer events than it would have.
//
// A second level, as in the store: per network (IPv4 /24, IPv6 /48:
// store.Network) and window, at most NetMaxEvents
// events are spooled in all of its units (past it an event is dropped,
// except its unit's first of each kind in the window, spooled without its
// raw message, so every unit that sends is still listed centrally) and at
// most NetMaxRawBytes of raw messages. Without it a sender with a /48
// would get the unit's allowance 65536 times over. The trap node's
// network caps should be at least the central store's for the same reason
// as the unit caps (the defaults are the same: 8000 events, 256 MiB).
//
// The decision uses the event's time (set by the trap, not by the sender),
// so a unit's window starts over every hour, as in the store. The state is
// bounded: at most MaxUnits unit windows and as many network windows, each
// in a bounded LRU map; past it the least recently used one is forgotten
// (almost always a window that has ended) and, should it come back, starts
// from zero: the cap fails open to the global bound, never closed.
type unitCap struct {
	caps   store.Caps
	window time.Duration

	mu      sync.Mutex
	m       *lru.Map[unitWindow, store.UnitSummary]
	nets    *lru.Map[unitWindow, store.UnitSummary]   // nil: no network caps
	over    func(unit netip.Prefix, window time.Time) // a unit reached its event cap
	overNet func(net netip.Prefix, window time.Time)  // a network reached its event cap
}

type unitWindow struct {
	unit   netip.Prefix // the unit, or the network in nets
	window int64        // unix seconds of the window's start
}

// capDecision is what the cap decided for one event.
type capDecision struct {
	key, netKey unitWindow
	event       bool        // spool the event
	raw         bool        // with its raw message
	by          store.CapBy // the cap that dropped the event or its raw message
	kind        store.Kind
	newKind     bool // the event was the unit window's first of its kind
	netNewKind  bool // and the network window's
	rawBytes    int  // raw bytes counted
}

func newUnitCap(caps store.Caps, window time.Duration, maxUnits int) *unitCap {
	if window <= 0 {
		window = time.Hour
	}
	if maxUnits <= 0 {
		maxUnits = 1 << 16
	}
	c := &unitCap{caps: caps, window: window, m: lru.New[unitWindow, store.UnitSummary](maxUnits)}
	if caps.NetMaxEvents > 0 || caps.NetMaxRawBytes > 0 {
		c.nets = lru.New[unitWindow, store.UnitSummary](maxUnits)
	}
	return c
}

// admit decides for ev (with raw, nil: none) and counts it.
func (c *unitCap) admit(ev *store.Event, raw []byte) capDecision {
	w := ev.Time.UTC().Truncate(c.window)
	k := unitWindow{unit: store.Unit(ev.ClientIP), window: w.Unix()}
	c.mu.Lock()
	defer c.mu.Unlock()
	u, _ := c.m.Use(k, func() store.UnitSummary { return store.UnitSummary{Unit: k.unit, Window: w} })
	d := capDecision{key: k, kind: ev.Kind, newKind: !u.Kinds.Has(ev.Kind)}
	var n *store.UnitSummary
	if c.nets != nil {
		d.netKey = unitWindow{unit: store.Network(ev.ClientIP), window: w.Unix()}
		n, _ = c.nets.Use(d.netKey, func() store.UnitSummary { return store.UnitSummary{Unit: d.netKey.unit, Window: w} })
		d.netNewKind = !n.Kinds.Has(ev.Kind)
	}
	unitWasOver := c.caps.UnitMaxEvents > 0 && u.Events >= c.caps.UnitMaxEvents
	netWasOver := n != nil && c.caps.NetMaxEvents > 0 && n.Events >= c.caps.NetMaxEvents
	a := c.caps.Admit(u, n, ev.Kind, ev.Time, raw)
	d.event, d.raw, d.by = a.Event, a.Raw, a.By
	if d.raw {
		d.rawBytes = len(raw)
	}
	if !unitWasOver && c.caps.UnitMaxEvents > 0 && u.Events >= c.caps.UnitMaxEvents && c.over != nil {
		c.over(k.unit, w)
	}
	if n != nil && !netWasOver && c.caps.NetMaxEvents > 0 && n.Events >= c.caps.NetMaxEvents && c.overNet != nil {
		c.overNet(d.netKey.unit, w)
	}
	return d
}

// undo takes back an admitted event the spool could not write, so that a
// sender retrying after a 4xx is not charged twice.
func (c *unitCap) undo(d capDecision) {
	if c == nil || !d.event {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	take := func(u *store.UnitSummary, newKind bool) {
		if u == nil {
			return // forgotten meanwhile: nothing to take back
		}
		u.Events = max(u.Events-1, 0)
		u.RawBytes = max(u.RawBytes-int64(d.rawBytes), 0)
		if newKind {
			u.Kinds &^= store.KindSet(0).Add(d.kind)
		}
	}
	take(c.m.Peek(d.key), d.newKind)
	if c.nets != nil {
		take(c.nets.Peek(d.netKey), d.netNewKind)
	}
}

// units is the number of unit windows held (tests).
func (c *unitCap) units() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Len()
}

// networks is the number of network windows held (tests).
func (c *unitCap) networks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nets == nil {
		return 0
	}
	return c.nets.Len()
}
