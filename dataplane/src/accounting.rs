//! Flow-log accounting: every packet that reaches a policy decision at an ENI with a
//! flow log is counted to (ENI, direction, 5-tuple, action) for the current
//! aggregation interval. Tracked flows count in their conntrack entry (it is already
//! in hand); untracked and refused traffic counts here, in a small fixed-capacity
//! per-core table. At the end of each interval both are turned into flow records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use flowlog::{Action, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};

use crate::addr::Family;
use crate::conntrack::{Nanos, NANOS_PER_SEC};
use crate::tables::EniId;
use crate::wire::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// Traffic of one flow direction within the current interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acct {
    pub packets: u64,
    pub bytes: u64,
    /// Unix seconds of the first and last packet. 32 bits (they last until 2106; a
    /// later clock saturates) keep an entry's accounting within its second cache line.
    pub first: u32,
    pub last: u32,
    /// OR of FIN=1, SYN=2, RST=4, SYN-ACK=18 (flow-log semantics).
    pub tcp_flags: u8,
}

impl Acct {
    #[inline]
    pub fn add(&mut self, bytes: u64, now_s: u64, tcp_flags: u8) {
        let now_s = secs32(now_s);
        if self.packets == 0 {
            self.first = now_s;
        }
        self.packets += 1;
        self.bytes += bytes;
        self.last = self.last.max(now_s);
        self.tcp_flags |= log_flags(tcp_flags);
    }
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// A flow direction's first packet: `Acct::default()` with [`Acct::add`] done.
    #[inline]
    pub fn first(bytes: u64, now_s: u64, tcp_flags: u8) -> Acct {
        let now_s = secs32(now_s);
        Acct { packets: 1, bytes, first: now_s, last: now_s, tcp_flags: log_flags(tcp_flags) }
    }
}

/// Unix seconds as [`Acct`] keeps them.
#[inline]
fn secs32(s: u64) -> u32 {
    s.min(u32::MAX as u64) as u32
}

/// The flags a flow log reports: FIN, SYN, RST, and SYN-ACK as 18; ACK alone and the
/// rest are dropped (section 4.2).
#[inline]
pub fn log_flags(tcp: u8) -> u8 {
    LOG_FLAGS[tcp as usize]
}

const fn log_flags_of(tcp: u8) -> u8 {
    let mut f = tcp & (TCP_FIN | TCP_SYN | TCP_RST);
    if tcp & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
        f |= TCP_ACK;
    }
    f
}

/// [`log_flags`] of every flag byte: one load instead of seven instructions per packet.
static LOG_FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = log_flags_of(i as u8);
        i += 1;
    }
    t
};

/// One flow direction at one ENI, as the packets carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub eni: EniId,
    pub egress: bool,
    pub accept: bool,
    /// Egress to the uplink (traffic-path 2) rather than to the VPC (1).
    pub to_uplink: bool,
    pub family: Family,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
}

impl FlowId {
    pub(crate) fn hash(&self) -> u64 {
        let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(29);
        let meta = (self.sport as u64) << 48
            | (self.dport as u64) << 32
            | (self.proto as u64) << 24
            | (self.egress as u64) << 1
            | self.accept as u64
            | (self.eni.0 as u64) << 2;
        let mut h = fold(self.src).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ fold(self.dst).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ meta;
        h ^= h >> 31;
        h.wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (h >> 29)
    }
}

/// A [`FlowId`] as the [`FlowTable`] keeps it: the two addresses and everything else
/// packed into a third 128-bit word, so a probe compares three words, not ten fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: u128,
    dst: u128,
    /// eni | sport << 32 | dport << 48 | proto << 64 | flags << 72 (`KEY_*`).
    rest: u128,
}

const KEY_EGRESS: u8 = 1;
const KEY_ACCEPT: u8 = 2;
const KEY_TO_UPLINK: u8 = 4;
const KEY_V6: u8 = 8;

impl Key {
    #[inline]
    fn of(id: &FlowId) -> Key {
        let bit = |set: bool, flag: u8| if set { flag } else { 0 };
        let flags = bit(id.egress, KEY_EGRESS)
            | bit(id.accept, KEY_ACCEPT)
            | bit(id.to_uplink, KEY_TO_UPLINK)
            | bit(id.family == Family::V6, KEY_V6);
        let rest = id.eni.0 as u128
            | (id.sport as u128) << 32
            | (id.dport as u128) << 48
            | (id.proto as u128) << 64
            | (flags as u128) << 72;
        Key { src: id.src, dst: id.dst, rest }
    }

    fn eni(&self) -> EniId {
        EniId(self.rest as u32)
    }

    fn id(&self) -> FlowId {
        let flags = (self.rest >> 72) as u8;
        FlowId {
            eni: self.eni(),
            egress: flags & KEY_EGRESS != 0,
            accept: flags & KEY_ACCEPT != 0,
            to_uplink: flags & KEY_TO_UPLINK != 0,
            family: if flags & KEY_V6 != 0 { Family::V6 } else { Family::V4 },
            proto: (self.rest >> 64) as u8,
            src: self.src,
            dst: self.dst,
            sport: (self.rest >> 32) as u16,
            dport: (self.rest >> 48) as u16,
        }
    }

    /// Without branches: all three words are compared.
    #[inline]
    fn same(&self, other: &Key) -> bool {
        (self.src ^ other.src) | (self.dst ^ other.dst) | (self.rest ^ other.rest) == 0
    }

    /// One 64×64→128-bit multiply, folded: its low bits (the slot) depend on every
    /// bit of the key.
    #[inline]
    fn hash(&self) -> u64 {
        let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(29);
        let a = fold(self.src) ^ self.rest as u64;
        let b = fold(self.dst) ^ (self.rest >> 64) as u64;
        let m = (a ^ 0x243f_6a88_85a3_08d3) as u128 * (b ^ 0x1319_8a2e_0370_7344) as u128;
        m as u64 ^ (m >> 64) as u64
    }
}

/// A flow direction's traffic in the [`FlowTable`]: [`Acct`] with the last time kept
/// in nanoseconds, so counting a packet needs no division (whole seconds on drain
/// give the same `last`). 32 bytes, aligned: two to a cache line, never across one.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Tally {
    packets: u64,
    bytes: u64,
    last: Nanos,
    first: u32,
    tcp_flags: u8,
}

impl Tally {
    #[inline(always)]
    fn count(&mut self, bytes: u64, now: Nanos, tcp_flags: u8) {
        self.packets += 1;
        self.bytes += bytes;
        self.last = self.last.max(now);
        self.tcp_flags |= log_flags(tcp_flags);
    }
}

/// Where a flow direction is counted in a [`FlowTable`] this interval: its tally
/// keeps the flow direction until the interval's drain, so while `interval` is the
/// table's current one the tally is the flow's without comparing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcctHint {
    /// The flow's index in the table's tallies.
    pub tally: u32,
    pub interval: u32,
}

impl AcctHint {
    /// No hint (or no room: the packet was counted as skipped).
    pub const NONE: AcctHint = AcctHint { tally: u32::MAX, interval: u32::MAX };
}

/// A hash slot: a flow direction's key and where its tally is. One cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Slot {
    key: Key,
    /// Index into `FlowTable::tallies`, or [`FREE`].
    tally: u32,
}

const FREE: u32 = u32::MAX;

/// Fixed-capacity table of flow directions not tracked by conntrack: open addressing
/// with linear probing, at most half full, over keys; the counts sit apart, dense,
/// in the order flows were first seen. A packet of a known flow (hinted by the flow
/// cache) then touches only its 32-byte tally, and the tallies of a few hundred busy
/// flows stay in L1 where their hash slots would spread over the table. Nothing is
/// removed except by [`FlowTable::drain`], which frees the slots it reports, so
/// probes never meet a tombstone and a drain costs what was used, not the size.
pub struct FlowTable {
    slots: Vec<Slot>,
    mask: usize,
    /// This interval's counts, in first-seen order; `order[i]` is the slot of
    /// `tallies[i]`.
    tallies: Vec<Tally>,
    order: Vec<u32>,
    limit: usize,
    /// Flow directions that found no room, per ENI: reported as SKIPDATA.
    skipped: Vec<u64>,
    /// Counts drains: [`AcctHint`]s of earlier intervals are void.
    interval: u32,
}

impl FlowTable {
    pub fn new(capacity: usize) -> FlowTable {
        let n = (capacity * 2).next_power_of_two().max(16);
        let free = Slot { key: Key { src: 0, dst: 0, rest: 0 }, tally: FREE };
        FlowTable {
            slots: vec![free; n],
            mask: n - 1,
            tallies: Vec::with_capacity(capacity),
            order: Vec::with_capacity(capacity),
            limit: capacity,
            skipped: Vec::new(),
            interval: 0,
        }
    }

    /// Counts a packet of `bytes` seen at `now` to `id`. Returns where it was
    /// counted, a hint for the flow's next packet.
    #[inline(always)]
    pub fn add(&mut self, id: &FlowId, bytes: u64, now: Nanos, tcp_flags: u8) -> AcctHint {
        self.add_hinted(AcctHint::NONE, || *id, bytes, now, tcp_flags)
    }

    /// [`FlowTable::add`] for a packet whose flow was counted at `hint` before: while
    /// the hint is of this interval, the flow is neither built (`id` is not called)
    /// nor hashed nor compared.
    #[inline(always)]
    pub fn add_hinted(
        &mut self,
        hint: AcctHint,
        id: impl FnOnce() -> FlowId,
        bytes: u64,
        now: Nanos,
        tcp_flags: u8,
    ) -> AcctHint {
        if hint.interval == self.interval {
            if let Some(t) = self.tallies.get_mut(hint.tally as usize) {
                t.count(bytes, now, tcp_flags);
                return hint;
            }
        }
        let key = Key::of(&id());
        let mut i = key.hash() as usize & self.mask;
        loop {
            let s = &self.slots[i];
            if s.tally == FREE {
                return self.insert(key, i, bytes, now, tcp_flags);
            }
            if s.key.same(&key) {
                let at = s.tally;
                self.tallies[at as usize].count(bytes, now, tcp_flags);
                return AcctHint { tally: at, interval: self.interval };
            }
            i = (i + 1) & self.mask;
        }
    }

    /// A flow direction's first packet this interval, at the free slot `i`. Out of
    /// line: the common case is a flow seen before.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, key: Key, i: usize, bytes: u64, now: Nanos, tcp_flags: u8) -> AcctHint {
        if self.tallies.len() >= self.limit {
            let e = key.eni().0 as usize;
            if self.skipped.len() <= e {
                self.skipped.resize(e + 1, 0);
            }
            self.skipped[e] += 1;
            return AcctHint::NONE;
        }
        let at = self.tallies.len() as u32;
        // Within the capacity reserved in `new`: no allocation.
        self.tallies.push(Tally {
            packets: 1,
            bytes,
            last: now,
            first: secs32(now / NANOS_PER_SEC),
            tcp_flags: log_flags(tcp_flags),
        });
        self.order.push(i as u32);
        self.slots[i] = Slot { key, tally: at };
        AcctHint { tally: at, interval: self.interval }
    }

    /// Flow directions accounted in the table.
    pub fn len(&self) -> usize {
        self.tallies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    /// Hands every flow direction to `f`, in the order they were first seen, and
    /// empties the table.
    pub fn drain(&mut self, mut f: impl FnMut(&FlowId, &Acct)) {
        self.interval = self.interval.wrapping_add(1);
        for (t, &i) in self.tallies.iter().zip(&self.order) {
            let s = &mut self.slots[i as usize];
            s.tally = FREE;
            let acct = Acct {
                packets: t.packets,
                bytes: t.bytes,
                first: t.first,
                last: secs32(t.last / NANOS_PER_SEC),
                tcp_flags: t.tcp_flags,
            };
            f(&s.key.id(), &acct);
        }
        self.tallies.clear();
        self.order.clear();
    }

    /// ENIs that lost flows since the last call, and how many.
    pub fn take_skipped(&mut self) -> Vec<(EniId, u64)> {
        let out =
            self.skipped.iter().enumerate().filter(|(_, n)| **n > 0).map(|(e, n)| (EniId(e as u32), *n)).collect();
        self.skipped.iter_mut().for_each(|n| *n = 0);
        out
    }
}

fn ip(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The flow record for one flow direction (section 4.1/4.3: the ENI side shows the
/// ENI's primary private IPv4; `pkt-*` keep the real addresses). Inlined into the
/// flush, which calls it once per record.
#[inline]
pub fn record(meta: &Arc<EniMeta>, id: &FlowId, a: &Acct) -> FlowRecord {
    let (pkt_src, pkt_dst) = (ip(id.family, id.src), ip(id.family, id.dst));
    let primary = |real: IpAddr| match (real, meta.primary_ipv4) {
        (IpAddr::V4(_), Some(p)) => IpAddr::V4(p),
        _ => real,
    };
    let (srcaddr, dstaddr) = if id.egress { (primary(pkt_src), pkt_dst) } else { (pkt_src, primary(pkt_dst)) };
    FlowRecord {
        eni: meta.clone(),
        start: a.first.into(),
        end: a.last.into(),
        log_status: LogStatus::Ok,
        traffic: Some(Traffic {
            srcaddr,
            dstaddr,
            pkt_srcaddr: pkt_src,
            pkt_dstaddr: pkt_dst,
            srcport: id.sport,
            dstport: id.dport,
            protocol: id.proto,
            packets: a.packets,
            bytes: a.bytes,
            action: if id.accept { Action::Accept } else { Action::Reject },
            tcp_flags: Some(a.tcp_flags),
            direction: if id.egress { FlowDirection::Egress } else { FlowDirection::Ingress },
            traffic_path: id.egress.then_some(if id.to_uplink { 2 } else { 1 }),
            // No AWS services behind the appliance.
            pkt_src_aws_service: None,
            pkt_dst_aws_service: None,
        }),
    }
}

/// One flow direction's count for an interval, as a worker hands it on.
pub type FinishedFlow = (FlowId, Acct);

/// The flow-log details of each ENI of one table snapshot, by [`EniId`] (`None`: the
/// ENI has no flow log).
pub type FlowMetas = Arc<[Option<Arc<EniMeta>>]>;

/// The flow-log details of `t`'s ENIs.
pub fn flow_metas(t: &crate::tables::Tables) -> FlowMetas {
    t.enis.iter().map(|e| e.as_ref().and_then(|e| e.flow_meta.clone())).collect()
}

/// A worker's finished flow records, on their way to the flow-log thread. Flows
/// travel as counted, with one reference to the ENIs' details for the whole batch;
/// the flow-log thread makes the records ([`RecordBatch::for_each_chunk`]). Making
/// them in the worker cost one shared reference count per record (a locked
/// increment that also waits for the record's stores), the largest part of a flush.
#[derive(Debug)]
pub struct RecordBatch {
    /// The ENI details the flows' [`EniId`]s name.
    pub metas: FlowMetas,
    /// Only flows of ENIs with a flow log.
    pub flows: Vec<FinishedFlow>,
    /// Records already made: SKIPDATA, and flows of an earlier snapshot's ENIs.
    pub made: Vec<FlowRecord>,
}

impl RecordBatch {
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.flows.len() + self.made.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record of each flow, in order.
    fn flow_records(&self) -> impl Iterator<Item = FlowRecord> + '_ {
        self.flows.iter().filter_map(|(id, a)| Some(record(self.metas.get(id.eni.0 as usize)?.as_ref()?, id, a)))
    }

    /// Hands the records to `f` at most `chunk` at a time, flows first: a
    /// million-flow interval does not become a million records at once.
    pub fn for_each_chunk(&self, chunk: usize, mut f: impl FnMut(&[FlowRecord])) {
        let mut buf = Vec::with_capacity(chunk.clamp(1, self.flows.len().max(1)));
        for r in self.flow_records() {
            buf.push(r);
            if buf.len() >= chunk {
                f(&buf);
                buf.clear();
            }
        }
        if !buf.is_empty() {
            f(&buf);
        }
        if !self.made.is_empty() {
            f(&self.made);
        }
    }

    /// Every record, flows first.
    pub fn records(&self) -> Vec<FlowRecord> {
        self.flow_records().chain(self.made.iter().cloned()).collect()
    }

    /// For each record, what SKIPDATA's bookkeeping needs when a batch could not be
    /// handed on.
    pub fn spans(&self) -> impl Iterator<Item = Span<'_>> + '_ {
        let flows = self.flows.iter().filter_map(|(id, a)| {
            let eni = self.metas.get(id.eni.0 as usize)?.as_ref()?;
            Some(Span { eni, start: a.first.into(), end: a.last.into(), traffic: true })
        });
        flows.chain(self.made.iter().map(|r| Span {
            eni: &r.eni,
            start: r.start,
            end: r.end,
            traffic: r.traffic.is_some(),
        }))
    }

    /// The flows' vector, emptied, for the worker to fill again
    /// ([`crate::pipeline::Pipeline::recycle_flows`]).
    pub fn into_spare(self) -> Vec<FinishedFlow> {
        let mut v = self.flows;
        v.clear();
        v
    }
}

/// A record's ENI, first and last second, and whether it carries traffic (SKIPDATA
/// does not).
#[derive(Debug, PartialEq, Eq)]
pub struct Span<'a> {
    pub eni: &'a Arc<EniMeta>,
    pub start: u64,
    pub end: u64,
    pub traffic: bool,
}

/// A SKIPDATA record: `n` flow directions of this ENI were not recorded.
pub fn skipdata(meta: &Arc<EniMeta>, start: u64, end: u64) -> FlowRecord {
    FlowRecord { eni: meta.clone(), start, end, log_status: LogStatus::SkipData, traffic: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_section_4_2() {
        assert_eq!(log_flags(TCP_SYN), 2);
        assert_eq!(log_flags(TCP_SYN | TCP_ACK), 18);
        assert_eq!(log_flags(TCP_ACK), 0);
        assert_eq!(log_flags(TCP_ACK | 0x08), 0, "PSH+ACK");
        assert_eq!(log_flags(TCP_SYN | 0x40), 2, "SYN+ECE");
        let mut a = Acct::default();
        a.add(60, 10, TCP_SYN);
        a.add(60, 11, TCP_FIN | TCP_ACK);
        assert_eq!(a.tcp_flags, 3, "SYN+FIN over the interval");
        for flags in 0..=255u8 {
            let mut a = Acct::default();
            a.add(60, 10, flags);
            assert_eq!(Acct::first(60, 10, flags), a);
            let (f, s, r, k) = (flags & TCP_FIN, flags & TCP_SYN, flags & TCP_RST, flags & TCP_ACK);
            let want = f | s | r | if s != 0 && k != 0 { TCP_ACK } else { 0 };
            assert_eq!(log_flags(flags), want, "{flags:#x}");
        }
    }

    fn meta(interface: &str) -> Arc<EniMeta> {
        Arc::new(EniMeta {
            interface_id: interface.into(),
            account_id: "123456789012".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            instance_id: None,
            region: "us-east-1".into(),
            az_id: None,
            primary_ipv4: Some(Ipv4Addr::new(198, 18, 0, 10)),
        })
    }

    #[test]
    fn a_batch_makes_the_records_of_logged_enis_in_order_and_in_chunks() {
        let flow = |eni: u32, sport: u16| {
            let id = FlowId {
                eni: EniId(eni),
                egress: sport.is_multiple_of(2),
                accept: true,
                to_uplink: false,
                family: Family::V4,
                proto: 17,
                src: 0xc612_000a,
                dst: 0xc613_0001,
                sport,
                dport: 53,
            };
            (id, Acct::first(80, 1_795_305_600 + sport as u64, 0))
        };
        let (logged, other) = (meta("eni-logged"), meta("eni-other"));
        // ENI 1 has no flow log: its flows are not records.
        let metas: FlowMetas = Arc::from(vec![Some(logged.clone()), None, Some(other.clone())]);
        let flows = vec![flow(0, 1), flow(1, 2), flow(2, 3), flow(0, 4), flow(2, 5)];
        let skip = skipdata(&logged, 10, 69);
        let batch = RecordBatch { metas, flows: flows.clone(), made: vec![skip.clone()] };
        assert_eq!(batch.len(), 6, "what the batch carries");

        let all = batch.records();
        let want: Vec<FlowRecord> = [(0, 0), (2, 2), (0, 3), (2, 4)]
            .iter()
            .map(|&(m, i)| record(if m == 0 { &logged } else { &other }, &flows[i].0, &flows[i].1))
            .chain([skip])
            .collect();
        assert_eq!(all, want);
        for chunk in [1, 2, 3, 4096] {
            let mut sizes = Vec::new();
            let mut got = Vec::new();
            batch.for_each_chunk(chunk, |r| {
                sizes.push(r.len());
                got.extend_from_slice(r);
            });
            assert_eq!(got, all, "chunks of {chunk}");
            assert!(sizes[..sizes.len() - 1].iter().all(|&n| n <= chunk), "chunks of {chunk}: {sizes:?}");
        }
        let spans: Vec<_> = batch.spans().map(|s| (s.eni.interface_id.clone(), s.start, s.end, s.traffic)).collect();
        assert_eq!(spans.len(), 5);
        assert_eq!(spans[0], ("eni-logged".into(), 1_795_305_601, 1_795_305_601, true));
        assert_eq!(spans[4], ("eni-logged".into(), 10, 69, false), "SKIPDATA carries no traffic");

        let capacity = batch.flows.capacity();
        let spare = batch.into_spare();
        assert!(spare.is_empty() && spare.capacity() == capacity, "the memory goes back, not the flows");
    }

    #[test]
    fn seconds_past_2106_saturate() {
        assert_eq!(Acct::first(1, u64::MAX / NANOS_PER_SEC, 0).first, u32::MAX);
        assert_eq!(Acct::first(1, 1_795_305_600, 0).last, 1_795_305_600);
    }

    #[test]
    fn table_counts_and_reports_what_did_not_fit() {
        let id = |sport| FlowId {
            eni: EniId(3),
            egress: true,
            accept: false,
            to_uplink: true,
            family: Family::V4,
            proto: 6,
            src: 1,
            dst: 2,
            sport,
            dport: 80,
        };
        let mut t = FlowTable::new(2);
        const S: u64 = NANOS_PER_SEC;
        t.add(&id(1), 100, 5 * S + 1, 0);
        t.add(&id(1), 50, 7 * S + S - 1, 0);
        t.add(&id(1), 1, 6 * S, 0);
        t.add(&id(2), 10, 6 * S, 0);
        t.add(&id(3), 10, 6 * S, 0);
        let mut got = Vec::new();
        t.drain(|i, a| got.push((i.sport, *a)));
        got.sort_by_key(|g| g.0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, Acct { packets: 3, bytes: 151, first: 5, last: 7, tcp_flags: 0 });
        assert_eq!(t.take_skipped(), vec![(EniId(3), 1)]);
        assert_eq!(t.take_skipped(), vec![]);
    }

    #[test]
    fn a_hint_counts_to_its_tally_until_the_drain() {
        let id = |sport| FlowId {
            eni: EniId(1),
            egress: false,
            accept: false,
            to_uplink: false,
            family: Family::V4,
            proto: 17,
            src: 1,
            dst: 2,
            sport,
            dport: 53,
        };
        let mut t = FlowTable::new(16);
        let a = t.add(&id(1), 10, 1, 0);
        let b = t.add(&id(2), 10, 1, 0);
        assert!(a != AcctHint::NONE && b != AcctHint::NONE && a != b);
        // A live hint is used without building the flow.
        assert_eq!(t.add_hinted(a, || unreachable!(), 10, 2, 0), a);
        assert_eq!(t.add_hinted(AcctHint::NONE, || id(1), 10, 3, 0), a);
        let mut got = Vec::new();
        t.drain(|i, acct| got.push((i.sport, acct.packets)));
        got.sort();
        assert_eq!(got, vec![(1, 3), (2, 1)]);
        // After the drain the hint is void: the flow is looked up and starts over.
        let again = t.add_hinted(a, || id(2), 10, 4, 0);
        assert_ne!(again, a);
        t.drain(|i, acct| got.push((i.sport, acct.packets)));
        assert_eq!(got[2..], [(2, 1)]);
    }

    #[test]
    fn a_slot_is_a_cache_line_and_a_tally_half_of_one() {
        assert_eq!((size_of::<Slot>(), align_of::<Slot>()), (64, 64));
        assert_eq!((size_of::<Tally>(), align_of::<Tally>()), (32, 32));
    }

    #[test]
    fn key_keeps_every_field() {
        let base = FlowId {
            eni: EniId(u32::MAX),
            egress: false,
            accept: false,
            to_uplink: false,
            family: Family::V4,
            proto: 255,
            src: u128::MAX,
            dst: 7,
            sport: u16::MAX,
            dport: 1,
        };
        let ids = [
            base,
            FlowId { egress: true, ..base },
            FlowId { accept: true, ..base },
            FlowId { to_uplink: true, ..base },
            FlowId { family: Family::V6, ..base },
            FlowId { eni: EniId(0), proto: 0, src: 0, dst: u128::MAX, sport: 0, dport: u16::MAX, ..base },
        ];
        for (i, a) in ids.iter().enumerate() {
            assert_eq!(Key::of(a).id(), *a);
            for b in &ids[i + 1..] {
                assert!(!Key::of(a).same(&Key::of(b)), "{a:?} / {b:?}");
            }
        }
    }

    /// The table against a map: the same traffic, counted per `FlowId` with
    /// `Acct::add`, and the same flow directions turned away once it is full.
    #[test]
    fn table_matches_a_map() {
        use rand::{Rng, SeedableRng};
        use std::collections::HashMap;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for capacity in [1, 5, 100, 1000] {
            let mut t = FlowTable::new(capacity);
            for interval in 0..4u64 {
                let mut want: HashMap<FlowId, Acct> = HashMap::new();
                let mut order = Vec::new();
                let mut skipped: HashMap<EniId, u64> = HashMap::new();
                for _ in 0..3000 {
                    let v6 = rng.gen_bool(0.3);
                    let id = FlowId {
                        eni: EniId(rng.gen_range(0..3)),
                        egress: rng.gen(),
                        accept: rng.gen(),
                        to_uplink: rng.gen(),
                        family: if v6 { Family::V6 } else { Family::V4 },
                        proto: [6, 17, 1][rng.gen_range(0..3)],
                        src: if v6 { (rng.gen_range(0..4u128)) << 120 | 1 } else { rng.gen_range(0..4) },
                        dst: rng.gen_range(0..3),
                        sport: rng.gen_range(0..3),
                        dport: 443,
                    };
                    let (bytes, flags) = (rng.gen_range(40..1500), rng.gen());
                    let now = (interval * 60 + rng.gen_range(0..60)) * NANOS_PER_SEC + rng.gen_range(0..NANOS_PER_SEC);
                    t.add(&id, bytes, now, flags);
                    let room = want.len() < capacity;
                    match want.get_mut(&id) {
                        Some(a) => a.add(bytes, now / NANOS_PER_SEC, flags),
                        None if room => {
                            let mut a = Acct::default();
                            a.add(bytes, now / NANOS_PER_SEC, flags);
                            want.insert(id, a);
                            order.push(id);
                        }
                        None => *skipped.entry(id.eni).or_default() += 1,
                    }
                }
                let mut got = Vec::new();
                t.drain(|i, a| got.push((*i, *a)));
                let want: Vec<(FlowId, Acct)> = order.iter().map(|i| (*i, want[i])).collect();
                assert_eq!(got, want, "capacity {capacity}, interval {interval}");
                let mut skipped: Vec<(EniId, u64)> = skipped.into_iter().collect();
                skipped.sort_by_key(|s| s.0 .0);
                assert_eq!(t.take_skipped(), skipped);
            }
        }
    }

    #[test]
    fn table_is_reusable_after_drain() {
        let id = |n: u32| FlowId {
            eni: EniId(n % 3),
            egress: n & 1 == 0,
            accept: true,
            to_uplink: false,
            family: Family::V6,
            proto: 17,
            src: (n as u128) << 100,
            dst: n as u128,
            sport: n as u16,
            dport: 53,
        };
        let mut t = FlowTable::new(1000);
        for round in 0..3u64 {
            for n in 0..1000 {
                t.add(&id(n), n as u64, round * NANOS_PER_SEC, 0);
                t.add(&id(n), 1, (round + 1) * NANOS_PER_SEC, 0);
            }
            assert_eq!(t.len(), 1000);
            let mut got = Vec::new();
            t.drain(|i, a| got.push((*i, *a)));
            assert!(t.is_empty());
            assert_eq!(got.len(), 1000, "round {round}");
            for (n, (i, a)) in got.iter().enumerate() {
                assert_eq!(*i, id(n as u32), "first-seen order");
                let want =
                    Acct { packets: 2, bytes: n as u64 + 1, first: round as u32, last: round as u32 + 1, tcp_flags: 0 };
                assert_eq!(*a, want);
            }
        }
        assert!(t.take_skipped().is_empty());
    }
}
