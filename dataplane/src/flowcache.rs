//! The flow cache: per core, an exact-match memo of decisions that depend only on
//! the tables and a frame's headers, so a frame of a known flow skips the parser,
//! the source and route lookups, the NACL classifiers and the conntrack hash (OVS's
//! exact-match cache, in spirit).
//!
//! What it holds, and why that is safe:
//! - A forwarded plain IPv4 TCP/UDP frame (see [`crate::wire::plain_ipv4`]) whose
//!   every ENI hop found a live conntrack entry. Everything else on its path (source
//!   ENI, source/destination check, route, both NACLs) is a function of the tables
//!   and the key; the entries are named by slot and serial and checked live on every
//!   use, which is what `Conntrack::find` would have answered.
//! - A frame from the uplink refused by its destination subnet's NACL: that is its
//!   first hop, and it is stateless.
//!
//! The key is the ingress port, the source MAC and the 5-tuple. Every slot belongs
//! to one table snapshot: `Pipeline::sync` empties the cache when the snapshot
//! changes. New flows, untracked flows, ICMP, IPv6, fragments and tagged frames take
//! the full path every time, and so does every frame a trace explains.

use crate::accounting::AcctHint;
use crate::addr::Mac;
use crate::conntrack::{mix, Way};
use crate::tables::{EniId, PortId, Tables};
use crate::wire::PlainV4;

/// What a frame is looked up by: ingress port, source MAC and 5-tuple.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheKey {
    addrs: u64,
    l4: u64,
    origin: u64,
}

impl CacheKey {
    #[inline]
    pub fn new(port: PortId, p: &PlainV4) -> CacheKey {
        CacheKey {
            addrs: (p.src as u64) << 32 | p.dst as u64,
            l4: (p.sport as u64) << 48 | (p.dport as u64) << 32 | p.proto as u64,
            origin: Tables::mac_key(port, p.src_mac),
        }
    }

    #[inline]
    fn hash(&self) -> u64 {
        // Two rounds of murmur3's finaliser: the fields of real keys move together
        // (client address, port and MAC all counting up), so mix fully.
        mix(self.addrs ^ mix(self.l4 ^ self.origin.rotate_left(32)))
    }
}

/// A conntrack entry named by slot and serial (see `Conntrack::is_live`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtRef {
    pub idx: u32,
    pub serial: u32,
}

/// A cached decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded out of `egress` to `dst_mac`. `hops` are the source ENI (egress) and
    /// the destination ENI (ingress) with their conntrack entries; `None` where that
    /// side is the uplink.
    Forward {
        egress: PortId,
        dst_mac: Mac,
        way: Way,
        hops: [Option<(EniId, CtRef)>; 2],
        from_uplink: bool,
        to_uplink: bool,
    },
    /// From the uplink, refused by the NACL of the subnet of `dst` (reached at
    /// `dst_mac`). `acct`: where its flow-log accounting went last (checked on use).
    NaclIngressReject { dst: EniId, dst_mac: Mac, acct: AcctHint },
}

const NONE: u32 = u32::MAX;
const FORWARD: u8 = 1;
const REJECT: u8 = 2;

/// One cache line per entry: the key, the snapshot epoch and the decision, packed.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Slot {
    key: CacheKey,
    /// The cache epoch the slot was filled in; 0 = empty.
    epoch: u32,
    kind: u8,
    way: u8,
    from_uplink: bool,
    to_uplink: bool,
    egress: PortId,
    dst_mac: [u8; 6],
    eni: [u32; 2],
    ct: [(u32, u32); 2],
}

impl Slot {
    fn decision(&self) -> Decision {
        match self.kind {
            FORWARD => {
                let hop = |i: usize| {
                    (self.eni[i] != NONE)
                        .then(|| (EniId(self.eni[i]), CtRef { idx: self.ct[i].0, serial: self.ct[i].1 }))
                };
                Decision::Forward {
                    egress: self.egress,
                    dst_mac: Mac(self.dst_mac),
                    way: if self.way == 0 { Way::LoToHi } else { Way::HiToLo },
                    hops: [hop(0), hop(1)],
                    from_uplink: self.from_uplink,
                    to_uplink: self.to_uplink,
                }
            }
            _ => Decision::NaclIngressReject {
                dst: EniId(self.eni[1]),
                dst_mac: Mac(self.dst_mac),
                acct: AcctHint { tally: self.ct[1].0, interval: self.ct[1].1 },
            },
        }
    }

    fn fill(key: CacheKey, epoch: u32, d: Decision) -> Slot {
        let mut s = Slot { key, epoch, eni: [NONE; 2], ct: [(NONE, 0); 2], ..Slot::default() };
        match d {
            Decision::Forward { egress, dst_mac, way, hops, from_uplink, to_uplink } => {
                s.kind = FORWARD;
                s.egress = egress;
                s.dst_mac = dst_mac.0;
                s.way = (way == Way::HiToLo) as u8;
                s.from_uplink = from_uplink;
                s.to_uplink = to_uplink;
                for (i, hop) in hops.into_iter().enumerate() {
                    if let Some((eni, r)) = hop {
                        s.eni[i] = eni.0;
                        s.ct[i] = (r.idx, r.serial);
                    }
                }
            }
            Decision::NaclIngressReject { dst, dst_mac, acct } => {
                s.kind = REJECT;
                s.eni[1] = dst.0;
                s.dst_mac = dst_mac.0;
                s.from_uplink = true;
                s.ct[1] = (acct.tally, acct.interval);
            }
        }
        s
    }
}

/// A two-way set-associative cache of [`Decision`]s. Within a set the newer entry
/// sits in the first way. When both ways hold live forwarded flows, a new one takes
/// a way only every [`REPLACE_EVERY`]th time: traffic cycles through its flows, and
/// with always-replace a set of three busy flows would miss on every frame (OVS's
/// EMC inserts probabilistically for the same reason). A refusal never pushes out a
/// forwarded flow, so a flood of refused 5-tuples cannot evict the flows carried.
pub struct FlowCache {
    slots: Box<[Slot]>,
    /// 16 bits of each slot's key hash (0: never filled), 32 times denser than the
    /// slots: a lookup that misses reads one line of this instead of a set of slots,
    /// so new flows neither wait on nor evict lines of the big array.
    signatures: Box<[u16]>,
    /// Sets - 1 (sets are a power of two).
    mask: usize,
    epoch: u32,
    /// Counts inserts that found their set full of forwarded flows.
    contended: u32,
    /// Counts refusals offered.
    refusals: u32,
}

/// A new forwarded flow replaces an older one in a full set one try in this many.
pub const REPLACE_EVERY: u32 = 8;
/// Refusals are cached one offer in this many: a flood of distinct refused 5-tuples
/// (random source ports) can never hit, and writing each one cost more than the
/// refusal itself (measured: 103 -> 188 ns a frame when every offer was taken); a
/// 5-tuple refused over and over (a generator, a retrying client) is cached soon.
pub const REFUSAL_EVERY: u32 = 64;

impl FlowCache {
    /// A cache of at least `entries` slots (0: none; every lookup misses).
    pub fn new(entries: usize) -> FlowCache {
        let sets = (entries / 2).next_power_of_two().max(1);
        let slots = if entries == 0 { 0 } else { sets * 2 };
        FlowCache {
            slots: vec![Slot::default(); slots].into_boxed_slice(),
            signatures: vec![0; slots].into_boxed_slice(),
            mask: sets - 1,
            epoch: 1,
            contended: 0,
            refusals: 0,
        }
    }

    /// Forgets everything (the tables changed). O(1) but once per 4 billion calls.
    pub fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.slots.fill(Slot::default());
            self.epoch = 1;
        }
    }

    /// The first slot of the key's set, and the key's signature.
    #[inline]
    fn locate(&self, key: &CacheKey) -> (usize, u16) {
        let h = key.hash();
        ((h as usize & self.mask) * 2, (h >> 48) as u16 | 1)
    }

    /// The key's decision and where it is kept (for [`FlowCache::set_acct`]).
    #[inline]
    pub fn get(&self, key: &CacheKey) -> Option<(usize, Decision)> {
        if self.slots.is_empty() {
            return None;
        }
        let (set, sig) = self.locate(key);
        let signatures = &self.signatures[set..set + 2];
        (set..set + 2)
            .filter(|&i| signatures[i - set] == sig)
            .find(|&i| self.slots[i].key == *key && self.slots[i].epoch == self.epoch)
            .map(|i| (i, self.slots[i].decision()))
    }

    /// Updates the accounting hint of the refusal kept at `at`.
    #[inline]
    pub fn set_acct(&mut self, at: usize, acct: AcctHint) {
        if let Some(s) = self.slots.get_mut(at).filter(|s| s.kind == REJECT) {
            s.ct[1] = (acct.tally, acct.interval);
        }
    }

    pub fn insert(&mut self, key: CacheKey, d: Decision) {
        if self.slots.is_empty() {
            return;
        }
        if let Decision::NaclIngressReject { .. } = d {
            self.refusals = self.refusals.wrapping_add(1);
            if !self.refusals.is_multiple_of(REFUSAL_EVERY) {
                return;
            }
        }
        let (set, sig) = self.locate(&key);
        let epoch = self.epoch;
        let fresh = Slot::fill(key, epoch, d);
        let ways = &mut self.slots[set..set + 2];
        let signatures = &mut self.signatures[set..set + 2];
        let live = |s: &Slot| s.epoch == epoch;
        if let Some(w) = (0..2).find(|&w| live(&ways[w]) && ways[w].key == key) {
            ways[w] = fresh;
            return;
        }
        let refusal = fresh.kind == REJECT;
        if !live(&ways[0]) || (refusal && ways[0].kind == REJECT) {
            ways[0] = fresh;
            signatures[0] = sig;
            return;
        }
        // The second way may be taken if it is empty or holds a refusal.
        let second_free = !live(&ways[1]) || ways[1].kind == REJECT;
        if !second_free {
            if refusal {
                return;
            }
            self.contended = self.contended.wrapping_add(1);
            if !self.contended.is_multiple_of(REPLACE_EVERY) {
                return;
            }
        }
        // Newest first: the first way's entry becomes the older one.
        ways[1] = ways[0];
        signatures[1] = signatures[0];
        ways[0] = fresh;
        signatures[0] = sig;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> CacheKey {
        let p = PlainV4 {
            src_mac: Mac([2, 0, 0, 0, 0, 1]),
            dst_mac: Mac([2, 0, 0, 0, 0, 2]),
            ttl: 64,
            src: 0xc612_0000 + n,
            dst: 0xc613_0001,
            proto: 6,
            sport: 1000,
            dport: 443,
            tcp_flags: 0,
            ip_len: 40,
        };
        CacheKey::new(1, &p)
    }
    fn forward(idx: u32) -> Decision {
        Decision::Forward {
            egress: 2,
            dst_mac: Mac([2, 0, 0, 0, 0, 9]),
            way: Way::HiToLo,
            hops: [None, Some((EniId(3), CtRef { idx, serial: 7 }))],
            from_uplink: true,
            to_uplink: false,
        }
    }
    fn reject() -> Decision {
        Decision::NaclIngressReject {
            dst: EniId(3),
            dst_mac: Mac([2, 0, 0, 0, 0, 9]),
            acct: AcctHint { tally: 12, interval: 4 },
        }
    }
    fn get(c: &FlowCache, n: u32) -> Option<Decision> {
        c.get(&key(n)).map(|(_, d)| d)
    }

    /// Offers a refusal until it is taken (one offer in REFUSAL_EVERY is).
    fn refuse(c: &mut FlowCache, n: u32) {
        for _ in 0..REFUSAL_EVERY {
            c.insert(key(n), reject());
        }
    }

    #[test]
    fn slots_are_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
    }

    #[test]
    fn decisions_come_back_as_stored_until_cleared() {
        let mut c = FlowCache::new(64);
        c.insert(key(1), forward(5));
        refuse(&mut c, 2);
        assert_eq!(get(&c, 1), Some(forward(5)));
        assert_eq!(get(&c, 2), Some(reject()));
        assert_eq!(get(&c, 3), None);
        c.insert(key(1), forward(6));
        assert_eq!(get(&c, 1), Some(forward(6)));
        c.clear();
        assert_eq!(get(&c, 1), None);
        assert_eq!(get(&c, 2), None);
    }

    #[test]
    fn a_refusals_accounting_hint_can_be_updated_in_place() {
        let mut c = FlowCache::new(64);
        refuse(&mut c, 2);
        let (at, _) = c.get(&key(2)).unwrap();
        c.set_acct(at, AcctHint { tally: 99, interval: 5 });
        let Some(Decision::NaclIngressReject { acct, .. }) = get(&c, 2) else { panic!() };
        assert_eq!(acct, AcctHint { tally: 99, interval: 5 });
    }

    #[test]
    fn refusals_never_push_out_forwarded_flows() {
        // One set: every key lands in it.
        let mut c = FlowCache::new(2);
        c.insert(key(1), forward(1));
        c.insert(key(2), forward(2));
        for n in 10..100 {
            refuse(&mut c, n);
        }
        assert_eq!(get(&c, 1), Some(forward(1)));
        assert_eq!(get(&c, 2), Some(forward(2)));
        // A forwarded flow pushes out the older of the two, every REPLACE_EVERYth try.
        for _ in 1..REPLACE_EVERY {
            c.insert(key(3), forward(3));
            assert_eq!(get(&c, 3), None);
        }
        c.insert(key(3), forward(3));
        assert_eq!((get(&c, 1), get(&c, 2), get(&c, 3)), (None, Some(forward(2)), Some(forward(3))));
        // With one forwarded flow in the set, refusals take turns in the other way.
        let mut c = FlowCache::new(2);
        c.insert(key(1), forward(1));
        refuse(&mut c, 10);
        refuse(&mut c, 11);
        assert_eq!((get(&c, 1), get(&c, 10), get(&c, 11)), (Some(forward(1)), None, Some(reject())));
    }

    #[test]
    fn refusals_are_taken_one_offer_in_refusal_every() {
        let mut c = FlowCache::new(1 << 20);
        for n in 0..REFUSAL_EVERY * 10 {
            c.insert(key(n), reject());
        }
        let held = (0..REFUSAL_EVERY * 10).filter(|&n| get(&c, n).is_some()).count();
        assert_eq!(held, 10);
    }

    #[test]
    fn a_cache_of_no_entries_holds_nothing() {
        let mut c = FlowCache::new(0);
        c.insert(key(1), forward(1));
        assert_eq!(get(&c, 1), None);
    }
}
