//! Per-core connection tracking, as AWS keeps it: one entry per (ENI, flow), so a
//! flow from ENI A to ENI B has an entry at A and one at B, each timed by its own
//! ENI's `ConnectionTrackingConfiguration`.
//!
//! Fixed capacity, allocated once: a slab of entries, an open-addressed index
//! (linear probing, backward-shift deletion, 32-bit tags to skip most key compares)
//! and a timing wheel of one-second slots that reclaims expired entries. Nothing here
//! allocates or locks on the per-packet path.
//!
//! Timing rules (spec section 7): an entry has expired when its idle time (since the
//! last forwarded packet, either direction) is greater than its timeout. An expired
//! entry stops matching at once and frees its capacity when the wheel reclaims it, at
//! the first whole second of the appliance clock after it expired.

use crate::accounting::{Acct, FinishedFlow, FlowId};
use crate::addr::Family;
use crate::prefetch::prefetch;
use crate::tables::{CtTimeouts, EniId};
use crate::wire::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

pub type Nanos = u64;
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Handshake not completed (SYN seen, no SYN-ACK then ACK).
pub const TCP_HANDSHAKE_TIMEOUT: u32 = 60;
/// After FIN in both directions or any RST.
pub const TCP_CLOSING_TIMEOUT: u32 = 10;
pub const ICMP_TIMEOUT: u32 = 30;
pub const OTHER_TIMEOUT: u32 = 600;

const WHEEL_SLOTS: u64 = 4096;
const NIL: u32 = u32::MAX;

/// Which way a packet goes relative to the canonical (lower, higher) endpoint order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    LoToHi,
    HiToLo,
}

/// A flow as conntrack knows it, canonical so both directions find the same entry.
/// ICMP queries use the identifier as both ports and the request type as
/// `icmp_query`. The small fields are packed into one word so a compare is four
/// integer compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub lo: u128,
    pub hi: u128,
    /// lo_port | hi_port << 16 | proto << 32 | icmp_query << 40 | family << 48
    meta: u64,
    pub eni: EniId,
}

impl CtKey {
    /// The key of a packet `src:sport -> dst:dport` at `eni`, and which way it goes.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn new(
        eni: EniId,
        family: Family,
        proto: u8,
        src: u128,
        dst: u128,
        sport: u16,
        dport: u16,
        icmp_query: u8,
    ) -> (CtKey, Way) {
        let (lo, hi, lo_port, hi_port, way) = if (src, sport) <= (dst, dport) {
            (src, dst, sport, dport, Way::LoToHi)
        } else {
            (dst, src, dport, sport, Way::HiToLo)
        };
        let meta = lo_port as u64
            | (hi_port as u64) << 16
            | (proto as u64) << 32
            | (icmp_query as u64) << 40
            | ((family == Family::V6) as u64) << 48;
        (CtKey { lo, hi, meta, eni }, way)
    }

    #[inline]
    pub fn at(mut self, eni: EniId) -> CtKey {
        self.eni = eni;
        self
    }

    pub fn lo_port(&self) -> u16 {
        self.meta as u16
    }
    pub fn hi_port(&self) -> u16 {
        (self.meta >> 16) as u16
    }
    pub fn proto(&self) -> u8 {
        (self.meta >> 32) as u8
    }
    pub fn icmp_query(&self) -> u8 {
        (self.meta >> 40) as u8
    }
    pub fn family(&self) -> Family {
        if self.meta >> 48 & 1 == 1 {
            Family::V6
        } else {
            Family::V4
        }
    }

    #[inline]
    pub fn hash(&self) -> u64 {
        let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(32);
        mix(fold(self.lo).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ fold(self.hi).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ self.meta.rotate_left(13)
            ^ (self.eni.0 as u64) << 40)
    }
}

/// murmur3's finaliser: full avalanche, cheap (also the flow cache's hash).
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// TCP progress bits.
const SYNACK_SEEN: u8 = 1;
const ESTABLISHED: u8 = 2;
const FIN_LO: u8 = 4;
const FIN_HI: u8 = 8;
const RST_SEEN: u8 = 16;

/// What the entry knows about its flow, for timeouts and explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtState {
    pub proto: u8,
    /// Which way the packet that created the entry went.
    pub opened: Way,
    tcp: u8,
    /// UDP packets seen per way (saturating at 2): [lo->hi, hi->lo].
    udp: [u8; 2],
}

/// The timeout class an entry is in, for explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtPhase {
    TcpHandshake,
    TcpEstablished,
    TcpClosing,
    UdpSingle,
    UdpStream,
    IcmpQuery,
    Other,
}

impl CtPhase {
    pub fn name(self) -> &'static str {
        match self {
            CtPhase::TcpHandshake => "tcp-handshake",
            CtPhase::TcpEstablished => "tcp-established",
            CtPhase::TcpClosing => "tcp-closing",
            CtPhase::UdpSingle => "udp",
            CtPhase::UdpStream => "udp-stream",
            CtPhase::IcmpQuery => "icmp-query",
            CtPhase::Other => "other",
        }
    }
}

impl CtState {
    fn new(proto: u8, opened: Way) -> CtState {
        CtState { proto, opened, tcp: 0, udp: [0, 0] }
    }

    /// Records a forwarded packet going `way` with `tcp_flags`.
    fn observe(&mut self, way: Way, tcp_flags: u8) {
        match self.proto {
            crate::wire::PROTO_TCP => {
                if tcp_flags & TCP_RST != 0 {
                    self.tcp |= RST_SEEN;
                }
                if tcp_flags & TCP_FIN != 0 {
                    self.tcp |= if way == Way::LoToHi { FIN_LO } else { FIN_HI };
                }
                if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
                    self.tcp |= SYNACK_SEEN;
                } else if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_ACK && self.tcp & SYNACK_SEEN != 0 {
                    self.tcp |= ESTABLISHED;
                }
            }
            crate::wire::PROTO_UDP => {
                let n = &mut self.udp[way as usize];
                *n = (*n + 1).min(2);
            }
            _ => {}
        }
    }

    pub fn phase(&self) -> CtPhase {
        match self.proto {
            crate::wire::PROTO_TCP => {
                if self.tcp & RST_SEEN != 0 || self.tcp & (FIN_LO | FIN_HI) == FIN_LO | FIN_HI {
                    CtPhase::TcpClosing
                } else if self.tcp & ESTABLISHED != 0 {
                    CtPhase::TcpEstablished
                } else {
                    CtPhase::TcpHandshake
                }
            }
            crate::wire::PROTO_UDP => {
                if self.udp[0] >= 2 && self.udp[1] >= 2 {
                    CtPhase::UdpStream
                } else {
                    CtPhase::UdpSingle
                }
            }
            crate::wire::PROTO_ICMP | crate::wire::PROTO_ICMPV6 => CtPhase::IcmpQuery,
            _ => CtPhase::Other,
        }
    }

    /// Idle timeout in seconds under `t`.
    pub fn timeout(&self, t: &CtTimeouts) -> u32 {
        match self.phase() {
            CtPhase::TcpHandshake => TCP_HANDSHAKE_TIMEOUT,
            CtPhase::TcpEstablished => t.tcp_established,
            CtPhase::TcpClosing => TCP_CLOSING_TIMEOUT,
            CtPhase::UdpSingle => t.udp,
            CtPhase::UdpStream => t.udp_stream,
            CtPhase::IcmpQuery => ICMP_TIMEOUT,
            CtPhase::Other => OTHER_TIMEOUT,
        }
    }
}

/// Three cache lines, laid out for the two walks over many entries: a lookup reads
/// lines 0 (key) and 2 (liveness); an interval's flush reads lines 0 and 1 (key,
/// accounting, direction). `entry_layout` checks it.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Entry {
    key: CtKey,
    /// Flow-log accounting of the current interval, per way.
    acct: [Acct; 2],
    /// Which way leaves the entry's ENI (egress), and whether it leaves by the uplink.
    egress_way: Way,
    to_uplink: bool,
    /// The accounting interval whose dirty list holds the entry. Older: `acct` is
    /// stale (handed over already) and is reset by the next counted packet, so a
    /// drain only reads entries, never writes them back.
    listed: u32,
    /// The wheel second's list links (the second itself is `due`).
    prev: u32,
    next: u32,
    last_seen: Nanos,
    created: Nanos,
    /// The idle timeout under the ENI's current settings, kept up to date when the
    /// state or the settings change so a lookup is one compare.
    timeout: Nanos,
    /// The wheel second this entry is filed under.
    due: u64,
    /// Which incarnation of this slot the entry is (0: none, the slot is free), so a
    /// reference kept elsewhere can tell its entry from a later one in the same slot.
    serial: u32,
    state: CtState,
}

impl Entry {
    /// Strictly after the timeout: a packet exactly at it still belongs to the flow.
    #[inline]
    fn expired(&self, now: Nanos) -> bool {
        now.saturating_sub(self.last_seen) > self.timeout
    }
}

/// How an entry is opened: by a forwarded packet going `way`.
#[derive(Clone, Copy, Debug)]
pub struct Opening {
    pub way: Way,
    pub tcp_flags: u8,
    /// The packet leaves the entry's ENI (the egress hop opened it).
    pub egress: bool,
    /// Egress from this ENI goes out the uplink (traffic-path 2).
    pub to_uplink: bool,
    /// Count the packet for flow logs (`Some(bytes)`) or not.
    pub count: Option<u64>,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A live entry: the packet belongs to a tracked flow.
    Live(u32),
    /// An entry that has expired but is not reclaimed yet; a new entry for the same
    /// flow takes its place without needing capacity.
    Expired(u32),
    Missing,
}

/// A read-only view of an entry, for explanations and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtView {
    pub key: CtKey,
    pub state: CtState,
    pub phase: CtPhase,
    pub created: Nanos,
    pub last_seen: Nanos,
    pub timeout: u32,
}

pub struct Conntrack {
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// `(tag << 32) | (entry + 1)`, 0 = empty.
    index: Vec<u64>,
    mask: usize,
    capacity: u32,
    live: u32,
    per_eni: Vec<u32>,
    wheel: Vec<u32>,
    /// Every wheel second below this has been reclaimed.
    swept_until: Option<u64>,
    /// Entries with flow-log accounting to hand over (see [`Conntrack::list`]).
    dirty: Vec<u32>,
    /// The accounting interval the dirty list is for; never 0, which marks an entry
    /// never listed.
    interval: u32,
    /// Accounting of entries that went away before it was handed over.
    finished: Vec<FinishedFlow>,
    /// The serial the next opened entry gets.
    next_serial: u32,
    /// How often the serials wrapped: a reference kept across a wrap could name a
    /// later entry, so its keeper must forget it (see [`Conntrack::serial_wraps`]).
    serial_wraps: u32,
}

impl Conntrack {
    pub fn new(capacity: u32) -> Conntrack {
        let slots = (capacity as usize * 2).next_power_of_two().max(16);
        Conntrack {
            entries: Vec::with_capacity(capacity as usize),
            free: Vec::with_capacity(capacity as usize),
            index: vec![0; slots],
            mask: slots - 1,
            capacity,
            live: 0,
            per_eni: Vec::new(),
            wheel: vec![NIL; WHEEL_SLOTS as usize],
            swept_until: None,
            dirty: Vec::with_capacity(capacity as usize),
            interval: 1,
            finished: Vec::with_capacity(1024),
            next_serial: 1,
            serial_wraps: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }
    /// Entries holding capacity (live, or expired and not reclaimed yet).
    pub fn len(&self) -> u32 {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn eni_len(&self, eni: EniId) -> u32 {
        self.per_eni.get(eni.0 as usize).copied().unwrap_or(0)
    }

    /// Makes room for per-ENI counters up to `n` ENIs. Call between batches.
    pub fn ensure_enis(&mut self, n: usize) {
        if self.per_eni.len() < n {
            self.per_eni.resize(n, 0);
        }
    }

    /// Can `new_entries` more entries be created, `per_eni` of them for each ENI listed?
    pub fn has_room(&self, needs: &[EniId], per_eni_limit: u32) -> bool {
        if self.live as usize + needs.len() > self.capacity as usize {
            return false;
        }
        needs.iter().all(|e| {
            let same = needs.iter().filter(|x| *x == e).count() as u32;
            self.eni_len(*e) + same <= per_eni_limit
        })
    }

    #[inline]
    pub fn find(&self, key: &CtKey, now: Nanos) -> Found {
        let h = key.hash();
        let tag = h >> 32;
        let mut i = h as usize & self.mask;
        loop {
            let slot = self.index[i];
            if slot == 0 {
                return Found::Missing;
            }
            if slot >> 32 == tag {
                let idx = (slot as u32).wrapping_sub(1);
                let e = &self.entries[idx as usize];
                if e.key == *key {
                    return if e.expired(now) { Found::Expired(idx) } else { Found::Live(idx) };
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The serial of the entry in slot `idx` (see [`Conntrack::is_live`]).
    #[inline]
    pub fn serial(&self, idx: u32) -> u32 {
        self.entries[idx as usize].serial
    }

    /// Changes when serials wrap around (once in 4 billion entries): references
    /// (slot, serial) taken before the change must be dropped.
    #[inline]
    pub fn serial_wraps(&self) -> u32 {
        self.serial_wraps
    }

    /// Whether slot `idx` still holds the entry with `serial` and it is live at
    /// `now`: what [`Conntrack::find`] would answer `Found::Live(idx)` for, without
    /// the key.
    #[inline]
    pub fn is_live(&self, idx: u32, serial: u32, now: Nanos) -> bool {
        self.entries.get(idx as usize).is_some_and(|e| e.serial == serial && !e.expired(now))
    }

    fn timeout_of(state: &CtState, t: &CtTimeouts) -> Nanos {
        state.timeout(t) as u64 * NANOS_PER_SEC
    }

    fn due_second(e: &Entry) -> u64 {
        (e.last_seen + e.timeout) / NANOS_PER_SEC
    }

    pub fn view(&self, idx: u32) -> CtView {
        let e = &self.entries[idx as usize];
        CtView {
            key: e.key,
            state: e.state,
            phase: e.state.phase(),
            created: e.created,
            last_seen: e.last_seen,
            timeout: (e.timeout / NANOS_PER_SEC) as u32,
        }
    }

    /// Records a forwarded packet on a live entry.
    /// `count`: the packet's bytes, to be counted for flow logs. Always inlined: as a
    /// call, saving registers cost a cached frame 18 instructions.
    #[inline(always)]
    pub fn touch(&mut self, idx: u32, way: Way, tcp_flags: u8, now: Nanos, timeouts: &CtTimeouts, count: Option<u64>) {
        let e = &mut self.entries[idx as usize];
        let before = e.state;
        e.state.observe(way, tcp_flags);
        if e.state != before {
            e.timeout = Self::timeout_of(&e.state, timeouts);
        }
        e.last_seen = e.last_seen.max(now);
        if let Some(bytes) = count {
            self.count(idx, way, bytes, now, tcp_flags);
        }
        self.refile(idx);
    }

    /// Always inlined into `touch`: as a call it cost a counted packet 25 more
    /// instructions (callgrind, `pipeline-bench --profile-flowlog a`).
    #[inline(always)]
    fn count(&mut self, idx: u32, way: Way, bytes: u64, now: Nanos, tcp_flags: u8) {
        if self.list(idx) {
            // The first packet this interval: what `acct` holds was handed over.
            self.entries[idx as usize].acct = [Acct::default(); 2];
        }
        self.entries[idx as usize].acct[way as usize].add(bytes, now / NANOS_PER_SEC, tcp_flags);
    }

    /// Puts the entry on this interval's dirty list unless it is there already; true
    /// if it was not (its `acct` is then stale).
    #[inline]
    fn list(&mut self, idx: u32) -> bool {
        let e = &mut self.entries[idx as usize];
        if e.listed == self.interval {
            return false;
        }
        e.listed = self.interval;
        // Never past the capacity reserved in `new`: an entry is listed once.
        self.dirty.push(idx);
        true
    }

    /// The flow direction an entry's way stands for, in flow-log terms.
    fn flow_id(e: &Entry, way: Way) -> FlowId {
        let k = &e.key;
        let (src, dst, sport, dport) = match way {
            Way::LoToHi => (k.lo, k.hi, k.lo_port(), k.hi_port()),
            Way::HiToLo => (k.hi, k.lo, k.hi_port(), k.lo_port()),
        };
        // Flow logs show ICMP without ports (the identifier is ours, not AWS's).
        let (sport, dport) = if k.icmp_query() != 0 { (0, 0) } else { (sport, dport) };
        let egress = way == e.egress_way;
        FlowId {
            eni: k.eni,
            egress,
            accept: true,
            to_uplink: egress && e.to_uplink,
            family: k.family(),
            proto: k.proto(),
            src,
            dst,
            sport,
            dport,
        }
    }

    /// Moves an entry's accounting to `finished` (it is being removed or reused).
    fn retire_acct(&mut self, idx: u32) {
        let e = &mut self.entries[idx as usize];
        if e.listed != self.interval {
            return;
        }
        for way in [Way::LoToHi, Way::HiToLo] {
            let a = std::mem::take(&mut e.acct[way as usize]);
            if !a.is_empty() {
                let id = Self::flow_id(e, way);
                self.finished.push((id, a));
            }
        }
        // It stays on the dirty list (and listed) with nothing left to report.
    }

    /// At most this many flow directions wait for [`Conntrack::drain_accounting`].
    pub fn accounting_pending(&self) -> usize {
        self.finished.len() + 2 * self.dirty.len()
    }

    /// Hands over every flow direction counted since the last call.
    pub fn drain_accounting(&mut self, mut f: impl FnMut(&FlowId, &Acct)) {
        for (id, a) in self.finished.drain(..) {
            f(&id, &a);
        }
        // Dirty entries lie anywhere in the table: load a few ahead, so the misses
        // of a big drain (a million new flows in an interval) overlap.
        const AHEAD: usize = 8;
        for k in 0..self.dirty.len() {
            if let Some(&ahead) = self.dirty.get(k + AHEAD) {
                let e = &self.entries[ahead as usize];
                prefetch(&e.key);
                prefetch(&e.listed);
            }
            let e = &self.entries[self.dirty[k] as usize];
            for way in [Way::LoToHi, Way::HiToLo] {
                let a = &e.acct[way as usize];
                if !a.is_empty() {
                    f(&Self::flow_id(e, way), a);
                }
            }
        }
        self.dirty.clear();
        // Every listed entry's `acct` is stale from here on.
        self.interval = match self.interval.wrapping_add(1) {
            0 => 1,
            n => n,
        };
    }

    /// Creates an entry for a forwarded packet (capacity checked by the caller with
    /// [`Conntrack::has_room`]), or restarts an expired one in place.
    pub fn open(&mut self, found: Found, key: CtKey, o: Opening, now: Nanos, timeouts: &CtTimeouts) -> u32 {
        let way = o.way;
        let mut state = CtState::new(key.proto(), way);
        state.observe(way, o.tcp_flags);
        let timeout = Self::timeout_of(&state, timeouts);
        let egress_way = if o.egress {
            way
        } else if way == Way::LoToHi {
            Way::HiToLo
        } else {
            Way::LoToHi
        };
        // The opening packet's accounting goes in with the rest of the entry.
        let mut acct = [Acct::default(); 2];
        if let Some(bytes) = o.count {
            acct[way as usize] = Acct::first(bytes, now / NANOS_PER_SEC, o.tcp_flags);
        }
        let fresh = Entry {
            key,
            state,
            last_seen: now,
            created: now,
            timeout,
            due: 0,
            prev: NIL,
            next: NIL,
            acct,
            egress_way,
            to_uplink: o.to_uplink,
            listed: 0,
            serial: self.next_serial,
        };
        // 0 stands for a free slot; wrapping past it takes 4 billion new entries.
        self.next_serial = match self.next_serial.checked_add(1) {
            Some(n) => n,
            None => {
                self.serial_wraps = self.serial_wraps.wrapping_add(1);
                1
            }
        };
        let idx = match found {
            Found::Expired(idx) | Found::Live(idx) => {
                self.retire_acct(idx);
                self.unlink(idx);
                self.refill(idx, fresh);
                idx
            }
            Found::Missing => {
                let idx = match self.free.pop() {
                    Some(i) => {
                        self.refill(i, fresh);
                        i
                    }
                    None => {
                        assert!(self.entries.len() < self.capacity as usize, "conntrack capacity checked by caller");
                        self.entries.push(fresh);
                        (self.entries.len() - 1) as u32
                    }
                };
                self.insert_index(&key, idx);
                self.live += 1;
                if let Some(n) = self.per_eni.get_mut(key.eni.0 as usize) {
                    *n += 1;
                }
                idx
            }
        };
        self.entries[idx as usize].due = Self::due_second(&self.entries[idx as usize]);
        self.link(idx);
        // The opening packet is in `acct` already: list the entry, without the reset.
        if o.count.is_some() {
            self.list(idx);
        }
        idx
    }

    /// Puts `fresh` in slot `idx`, whose earlier entry's accounting was retired (on
    /// reuse or removal). If that entry was listed this interval, the slot is still on
    /// the dirty list: the new entry keeps the stamp, so it is not listed twice.
    fn refill(&mut self, idx: u32, fresh: Entry) {
        let listed = self.entries[idx as usize].listed;
        self.entries[idx as usize] = Entry { listed, ..fresh };
    }

    /// Reclaims every entry whose expiry second is before `now`'s. `timeouts` gives
    /// each ENI's current timeouts (`None`: the ENI is gone, its entries go too).
    pub fn advance<F: Fn(EniId) -> Option<CtTimeouts>>(&mut self, now: Nanos, timeouts: F) {
        let cur = now / NANOS_PER_SEC;
        let from = match self.swept_until {
            None => {
                self.swept_until = Some(cur);
                return;
            }
            Some(s) if s >= cur => return,
            Some(s) => s.max(cur.saturating_sub(WHEEL_SLOTS)),
        };
        for sec in from..cur {
            let slot = (sec % WHEEL_SLOTS) as usize;
            let mut idx = self.wheel[slot];
            while idx != NIL {
                let next = self.entries[idx as usize].next;
                self.recheck(idx, now, now, &timeouts);
                idx = next;
            }
        }
        self.swept_until = Some(cur);
    }

    /// Files every entry again under the timeouts that changed at `changed_at`, and
    /// reclaims what has expired. Entries already expired at `changed_at` stay
    /// expired (they keep the timeout they expired under).
    pub fn retime<F: Fn(EniId) -> Option<CtTimeouts>>(&mut self, now: Nanos, changed_at: Nanos, timeouts: F) {
        for slot in 0..WHEEL_SLOTS as usize {
            let mut idx = self.wheel[slot];
            while idx != NIL {
                let next = self.entries[idx as usize].next;
                self.recheck(idx, now, changed_at.min(now), &timeouts);
                idx = next;
            }
        }
    }

    /// Re-times an entry under its ENI's current settings: reclaimed if it expired
    /// before second `cur` (or its ENI is gone), filed again otherwise.
    fn recheck<F: Fn(EniId) -> Option<CtTimeouts>>(&mut self, idx: u32, now: Nanos, at: Nanos, timeouts: &F) {
        let cur = now / NANOS_PER_SEC;
        let e = &mut self.entries[idx as usize];
        match timeouts(e.key.eni) {
            Some(t) => {
                // An entry that has expired stays expired: it keeps the timeout it
                // expired under until it is reclaimed.
                if !e.expired(at) {
                    e.timeout = Self::timeout_of(&e.state, &t);
                }
                if Self::due_second(e) >= cur {
                    self.refile(idx);
                } else {
                    self.remove(idx);
                }
            }
            None => self.remove(idx),
        }
    }

    /// Files the entry under its expiry second again if that moved (no division on
    /// the common path: the expiry usually stays within the second it is filed under).
    #[inline]
    fn refile(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        let expiry = e.last_seen + e.timeout;
        let filed = e.due * NANOS_PER_SEC;
        if expiry >= filed && expiry - filed < NANOS_PER_SEC {
            return;
        }
        self.move_to(idx, expiry);
    }

    /// Out of line: taken about once a second per busy flow, not per packet.
    #[inline(never)]
    fn move_to(&mut self, idx: u32, expiry: Nanos) {
        self.unlink(idx);
        self.entries[idx as usize].due = expiry / NANOS_PER_SEC;
        self.link(idx);
    }

    fn link(&mut self, idx: u32) {
        let slot = (self.entries[idx as usize].due % WHEEL_SLOTS) as usize;
        let head = self.wheel[slot];
        let e = &mut self.entries[idx as usize];
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            self.entries[head as usize].prev = idx;
        }
        self.wheel[slot] = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let Entry { prev, next, due, .. } = self.entries[idx as usize];
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            let slot = (due % WHEEL_SLOTS) as usize;
            if self.wheel[slot] == idx {
                self.wheel[slot] = next;
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        let e = &mut self.entries[idx as usize];
        e.prev = NIL;
        e.next = NIL;
    }

    fn remove(&mut self, idx: u32) {
        self.retire_acct(idx);
        self.unlink(idx);
        let key = self.entries[idx as usize].key;
        self.remove_index(&key, idx);
        self.entries[idx as usize].serial = 0;
        self.free.push(idx);
        self.live -= 1;
        if let Some(n) = self.per_eni.get_mut(key.eni.0 as usize) {
            *n = n.saturating_sub(1);
        }
    }

    fn insert_index(&mut self, key: &CtKey, idx: u32) {
        let h = key.hash();
        let mut i = h as usize & self.mask;
        while self.index[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.index[i] = (h >> 32) << 32 | (idx as u64 + 1);
    }

    fn remove_index(&mut self, key: &CtKey, idx: u32) {
        let mut i = key.hash() as usize & self.mask;
        while self.index[i] as u32 != idx + 1 {
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        while self.index[j] != 0 {
            let e = (self.index[j] as u32 - 1) as usize;
            let home = self.entries[e].key.hash() as usize & self.mask;
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = self.index[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.index[hole] = 0;
    }

    /// All entries of one ENI (for explanations and stats), live or not.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &CtKey)> + '_ {
        let free: std::collections::HashSet<u32> = self.free.iter().copied().collect();
        (0..self.entries.len() as u32).filter(move |i| !free.contains(i)).map(|i| (i, &self.entries[i as usize].key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: CtTimeouts = CtTimeouts { tcp_established: 432_000, udp: 30, udp_stream: 180 };
    const S: u64 = NANOS_PER_SEC;

    fn opening(way: Way, tcp_flags: u8) -> Opening {
        Opening { way, tcp_flags, egress: true, to_uplink: false, count: None }
    }

    fn key(eni: u32, sport: u16, proto: u8) -> (CtKey, Way) {
        CtKey::new(EniId(eni), Family::V4, proto, 10, 20, sport, 80, 0)
    }

    #[test]
    fn entry_layout() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!((size_of::<Entry>(), align_of::<Entry>()), (192, 64), "three whole cache lines");
        let line = |offset: usize| offset / 64;
        // A flush reads lines 0 and 1 only.
        assert_eq!(line(offset_of!(Entry, key) + size_of::<CtKey>() - 1), 0);
        assert_eq!(line(offset_of!(Entry, acct) + size_of::<[Acct; 2]>() - 1), 1);
        for flag in [offset_of!(Entry, egress_way), offset_of!(Entry, to_uplink), offset_of!(Entry, listed)] {
            assert_eq!(line(flag), 1);
        }
        // A lookup reads line 0 and line 2.
        for live in [offset_of!(Entry, last_seen), offset_of!(Entry, timeout), offset_of!(Entry, serial)] {
            assert_eq!(line(live), 2);
        }
        assert_eq!(line(offset_of!(Entry, state) + size_of::<CtState>() - 1), 2);
    }

    #[test]
    fn both_directions_find_one_entry() {
        let mut ct = Conntrack::new(16);
        ct.ensure_enis(4);
        let (k, w) = key(1, 5000, 6);
        assert_eq!(w, Way::LoToHi);
        let f = ct.find(&k, S);
        ct.open(f, k, opening(w, TCP_SYN), S, &T);
        let (rk, rw) = CtKey::new(EniId(1), Family::V4, 6, 20, 10, 80, 5000, 0);
        assert_eq!(rk, k);
        assert_eq!(rw, Way::HiToLo);
        assert!(matches!(ct.find(&rk, S), Found::Live(_)));
        assert_eq!(ct.find(&k.at(EniId(2)), S), Found::Missing, "entries are per ENI");
    }

    #[test]
    fn tcp_phases_follow_the_spec() {
        let mut s = CtState::new(6, Way::LoToHi);
        s.observe(Way::LoToHi, TCP_SYN);
        assert_eq!(s.phase(), CtPhase::TcpHandshake);
        s.observe(Way::HiToLo, TCP_ACK); // an ACK before any SYN-ACK does not establish
        assert_eq!(s.phase(), CtPhase::TcpHandshake);
        s.observe(Way::HiToLo, TCP_SYN | TCP_ACK);
        assert_eq!(s.phase(), CtPhase::TcpHandshake);
        s.observe(Way::LoToHi, TCP_ACK);
        assert_eq!(s.phase(), CtPhase::TcpEstablished);
        s.observe(Way::LoToHi, TCP_FIN | TCP_ACK);
        assert_eq!(s.phase(), CtPhase::TcpEstablished, "FIN one way only");
        s.observe(Way::HiToLo, TCP_FIN | TCP_ACK);
        assert_eq!(s.phase(), CtPhase::TcpClosing);
        let mut r = CtState::new(6, Way::LoToHi);
        r.observe(Way::HiToLo, TCP_RST);
        assert_eq!(r.timeout(&T), 10);
    }

    #[test]
    fn udp_becomes_a_stream_after_two_each_way() {
        let mut s = CtState::new(17, Way::LoToHi);
        for w in [Way::LoToHi, Way::HiToLo, Way::LoToHi] {
            s.observe(w, 0);
            assert_eq!(s.timeout(&T), 30);
        }
        s.observe(Way::HiToLo, 0);
        assert_eq!(s.timeout(&T), 180);
    }

    #[test]
    fn expiry_is_strictly_after_the_timeout_and_reclaim_frees_capacity() {
        let mut ct = Conntrack::new(2);
        ct.ensure_enis(2);
        let tt = |_| Some(T);
        let (k, w) = key(1, 1, 17);
        let f = ct.find(&k, 0);
        ct.advance(0, tt);
        ct.open(f, k, opening(w, 0), 0, &T);
        assert!(matches!(ct.find(&k, 30 * S), Found::Live(_)), "idle == timeout is not expired");
        assert!(matches!(ct.find(&k, 30 * S + 1), Found::Expired(_)));
        ct.advance(30 * S + 1, tt);
        assert_eq!(ct.len(), 1, "still holds capacity within its expiry second");
        ct.advance(31 * S, tt);
        assert_eq!(ct.len(), 0);
        assert_eq!(ct.find(&k, 31 * S), Found::Missing);
    }

    #[test]
    fn capacity_and_per_eni_limits() {
        let mut ct = Conntrack::new(3);
        ct.ensure_enis(3);
        for sport in 0..2 {
            let (k, w) = key(1, sport, 6);
            assert!(ct.has_room(&[EniId(1)], 2));
            ct.open(Found::Missing, k, opening(w, TCP_SYN), 0, &T);
        }
        assert!(!ct.has_room(&[EniId(1)], 2), "ENI 1 is at its limit");
        assert!(ct.has_room(&[EniId(2)], 2));
        assert!(!ct.has_room(&[EniId(2), EniId(2)], 2), "only one slot left in the table");
    }

    #[test]
    fn serials_name_one_incarnation_and_report_their_wrap() {
        let t = CtTimeouts::default();
        let mut c = Conntrack::new(8);
        c.advance(0, |_| Some(t));
        c.next_serial = u32::MAX;
        let (k1, w1) = key(1, 1000, 6);
        // The last serial before the wrap: from here on serials repeat, so the wrap is
        // reported as soon as it is handed out.
        let a = c.open(Found::Missing, k1, opening(w1, 0x02), 0, &t);
        assert_eq!((c.serial(a), c.serial_wraps()), (u32::MAX, 1));
        assert!(c.is_live(a, u32::MAX, 1));
        let (k2, w2) = key(1, 1001, 6);
        let b = c.open(Found::Missing, k2, opening(w2, 0x02), 0, &t);
        assert_eq!((c.serial(b), c.serial_wraps()), (1, 1));
        // A removed entry's slot answers to no serial.
        c.advance(3600 * NANOS_PER_SEC, |_| Some(t));
        assert!(!c.is_live(a, u32::MAX, 3600 * NANOS_PER_SEC));
        assert_eq!(c.serial(a), 0);
    }

    #[test]
    fn index_survives_churn() {
        let mut ct = Conntrack::new(64);
        ct.ensure_enis(2);
        let mut now = 0;
        for round in 0..200u64 {
            for i in 0..40u16 {
                let (k, w) = key(1, (round as u16 % 7) * 100 + i, 17);
                let f = ct.find(&k, now);
                if !matches!(f, Found::Live(_)) && ct.has_room(&[EniId(1)], 64) {
                    ct.open(f, k, opening(w, 0), now, &T);
                }
            }
            now += 11 * S;
            ct.advance(now, |_| Some(T));
            for (idx, k) in ct.iter() {
                assert!(matches!(ct.find(k, now), Found::Live(i) | Found::Expired(i) if i == idx));
            }
        }
    }

    /// Packets counted over many intervals, with flows expiring, reclaimed and their
    /// slots reused mid-interval: every drain reports, per flow direction, exactly
    /// what a plain map counted since the previous drain.
    #[test]
    fn drains_match_a_model_across_intervals_expiry_and_reuse() {
        use std::collections::BTreeMap;
        let mut ct = Conntrack::new(6);
        ct.ensure_enis(2);
        let mut seed = 0x5eed_1234_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut model: BTreeMap<(u16, u16), (u64, u64)> = BTreeMap::new();
        let mut now = 100 * S;
        let (mut drains, mut reopened, mut opened) = (0, 0, 0);
        for step in 0..20_000 {
            // Now and then a long quiet spell, so flows expire.
            now += if rand(30) == 0 { 150 * S + rand(60 * S) } else { rand(4 * S) };
            // Swept only now and then, so flows are also found expired and restarted.
            if rand(8) == 0 {
                ct.advance(now, |_| Some(T));
            }
            if rand(40) == 0 {
                let mut got: BTreeMap<(u16, u16), (u64, u64)> = BTreeMap::new();
                ct.drain_accounting(|id, a| {
                    let c = got.entry((id.sport, id.dport)).or_default();
                    c.0 += a.packets;
                    c.1 += a.bytes;
                });
                assert_eq!(got, std::mem::take(&mut model), "drain {drains} at step {step}");
                drains += 1;
                continue;
            }
            let sport = 1000 + rand(10) as u16;
            let (k, opener) = key(1, sport, 17);
            let way = match (rand(2), opener) {
                (0, w) => w,
                (_, Way::LoToHi) => Way::HiToLo,
                (_, Way::HiToLo) => Way::LoToHi,
            };
            let bytes = 40 + rand(1000);
            let counted = rand(4) != 0;
            let count = counted.then_some(bytes);
            let (src, dst) = if way == Way::LoToHi { (k.lo_port(), k.hi_port()) } else { (k.hi_port(), k.lo_port()) };
            match ct.find(&k, now) {
                Found::Live(idx) => ct.touch(idx, way, 0, now, &T, count),
                found => {
                    if !ct.has_room(&[k.eni], u32::MAX) {
                        continue;
                    }
                    reopened += matches!(found, Found::Expired(_)) as u32;
                    opened += 1;
                    let o = Opening { way, tcp_flags: 0, egress: true, to_uplink: false, count };
                    ct.open(found, k, o, now, &T);
                }
            }
            if counted {
                let c = model.entry((src, dst)).or_default();
                c.0 += 1;
                c.1 += bytes;
            }
        }
        assert!(
            drains > 300 && reopened > 50 && opened > 500,
            "{drains} drains, {opened} opened, {reopened} restarted"
        );
    }

    #[test]
    fn accounting_survives_removal_and_reuse() {
        let mut ct = Conntrack::new(4);
        ct.ensure_enis(2);
        let (k, w) = key(1, 7, 17);
        let o = Opening { way: w, tcp_flags: 0, egress: true, to_uplink: true, count: Some(100) };
        let idx = ct.open(Found::Missing, k, o, 5 * S, &T);
        ct.touch(idx, Way::HiToLo, 0, 6 * S, &T, Some(40));
        ct.advance(5 * S, |_| Some(T));
        ct.advance(40 * S, |_| Some(T)); // expired and reclaimed
        let (k2, w2) = key(1, 8, 17);
        ct.open(Found::Missing, k2, Opening { count: Some(1), ..o }, 41 * S, &T);
        let _ = w2;
        let mut got = Vec::new();
        ct.drain_accounting(|id, a| got.push((id.sport, id.egress, id.to_uplink, a.packets, a.bytes)));
        got.sort();
        assert_eq!(got, vec![(7, true, true, 1, 100), (8, true, true, 1, 1), (80, false, false, 1, 40)]);
        let mut again = 0;
        ct.drain_accounting(|_, _| again += 1);
        assert_eq!(again, 0);
    }
}
