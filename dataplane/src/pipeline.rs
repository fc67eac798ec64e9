//! The pipeline: what AWS would do with each frame, run to completion per core.
//!
//! For every frame: parse -> source ENI (port + source MAC) -> ARP/ND answers ->
//! source/destination check -> route -> the policy hops in AWS order:
//!
//! 1. source ENI, security groups egress (conntrack first, rules on a miss)
//! 2. source subnet NACL egress, when the packet leaves the subnet
//! 3. destination subnet NACL ingress, when it enters the subnet
//! 4. destination ENI, security groups ingress (conntrack first, rules on a miss)
//!
//! then, if every hop allows it, conntrack entries are created or refreshed at both
//! ENIs and the frame is rewritten for its egress port. A frame of a known flow skips
//! the judging: the per-core flow cache ([`crate::flowcache`]) holds the decision
//! judging would make, and it is carried out as `commit` would carry out that plan
//! (a forward directly, a refusal through `commit`). Deciding ([`Pipeline::decide`])
//! reads state only; committing ([`Pipeline::commit`]) is the one place that changes
//! it, so a trace can ask "what would happen" without touching anything.

use crate::accounting::{self, Acct, AcctHint, FinishedFlow, FlowId, FlowMetas, FlowTable, RecordBatch};
use crate::addr::{Family, Mac};
use crate::conntrack::{Conntrack, CtKey, CtView, Found, Nanos, Opening, Way, NANOS_PER_SEC};
use crate::explain::{Explain, SgDecision, Step, Tracking};
use crate::flowcache::{CacheKey, CtRef, Decision, FlowCache};
use crate::forward::{self, Source};
use crate::fragment::{FragKey, FragmentCache, Remembered};
use crate::neighbor;
use crate::policy::{rule_key, sg, Direction};
use crate::stats::Stats;
use crate::tables::{Eni, EniId, PortId, Tables};
use crate::topflows::TopFlows;
use crate::wire::{
    self, reply, Arp, EmbeddedL4, IcmpMsg, IpPacket, Kind, Malformed, Packet, ETHERTYPE_IPV4, ETHERTYPE_IPV6, L4,
};
use flowlog::FlowRecord;

/// The policy hops, in the order AWS applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    SgEgress,
    NaclEgress,
    NaclIngress,
    SgIngress,
}

impl Hop {
    pub const ALL: [Hop; 4] = [Hop::SgEgress, Hop::NaclEgress, Hop::NaclIngress, Hop::SgIngress];
    pub fn name(self) -> &'static str {
        match self {
            Hop::SgEgress => "sg-egress",
            Hop::NaclEgress => "nacl-egress",
            Hop::NaclIngress => "nacl-ingress",
            Hop::SgIngress => "sg-ingress",
        }
    }
    pub fn direction(self) -> Direction {
        match self {
            Hop::SgEgress | Hop::NaclEgress => Direction::Egress,
            Hop::SgIngress | Hop::NaclIngress => Direction::Ingress,
        }
    }
}

/// Why a frame was dropped without a policy decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Malformed(Malformed),
    /// An ethertype other than IPv4, IPv6 and ARP.
    NotIp,
    /// The source MAC is no ENI of the ingress port (or a VPC address from outside).
    UnknownSource,
    SrcDstCheck,
    NoRoute,
    ConntrackFull,
    FragmentOrphan,
    /// ARP that the appliance does not answer (replies, probes, non-VPC targets).
    ArpIgnored,
    /// Neighbour discovery that the appliance does not answer.
    NdIgnored,
}

impl DropReason {
    /// One entry per counter (every malformed kind shares `malformed`).
    pub const KINDS: [&'static str; 9] = [
        "malformed",
        "not-ip",
        "unknown-source",
        "src-dst-check",
        "no-route",
        "conntrack-full",
        "fragment-orphan",
        "arp-ignored",
        "nd-ignored",
    ];
    pub fn kind_index(self) -> usize {
        match self {
            DropReason::Malformed(_) => 0,
            DropReason::NotIp => 1,
            DropReason::UnknownSource => 2,
            DropReason::SrcDstCheck => 3,
            DropReason::NoRoute => 4,
            DropReason::ConntrackFull => 5,
            DropReason::FragmentOrphan => 6,
            DropReason::ArpIgnored => 7,
            DropReason::NdIgnored => 8,
        }
    }
    pub fn name(self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
    /// The finer reason, for malformed frames.
    pub fn detail(self) -> Option<&'static str> {
        match self {
            DropReason::Malformed(m) => Some(m.name()),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward(PortId),
    /// Answered by the appliance (ARP/ND) on the ingress port.
    Reply,
    Reject(Hop),
    Drop(DropReason),
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Forward(_) => "forward",
            Verdict::Reply => "reply",
            Verdict::Reject(_) => "reject",
            Verdict::Drop(_) => "drop",
        }
    }
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Verdict::Reject(h) => Some(h.name()),
            Verdict::Drop(r) => Some(r.name()),
            _ => None,
        }
    }
}

/// One received frame: `buf` is the whole buffer (room to write a reply), the frame is
/// `buf[..len]`.
pub struct Frame<'a> {
    pub buf: &'a mut [u8],
    pub len: usize,
    pub port: PortId,
    pub time: Nanos,
}

/// What to do with a frame: on `Forward` and `Reply`, send `buf[head..head + len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub head: usize,
    pub len: usize,
}

/// A conntrack change to make at one ENI hop if the frame is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CtAction {
    /// No ENI at this hop, a related ICMP error, or ICMP with nothing to track.
    Nothing,
    /// An untracked flow (section 2.1): judged every time, no entry.
    Untracked,
    /// Refresh this live entry (of this ENI).
    Touch(EniId, u32),
    /// Create an entry at this ENI (in place of an expired one, if given).
    Open(EniId, Found),
}

#[derive(Clone, Copy, Debug)]
enum ReplyPlan {
    Arp(Arp),
    Advert { target: u128, to: u128, to_mac: Mac },
}

/// Everything `decide` concluded, for `commit` to carry out. Filled in place (it is
/// a few hundred bytes; returning it by value would copy it per frame).
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub verdict: Verdict,
    src: Option<EniId>,
    dst: Option<EniId>,
    dst_mac: Mac,
    l3_offset: u16,
    ethertype: u16,
    ip_len: u16,
    tcp_flags: u8,
    untracked: u8,
    /// The flow's conntrack key (its `eni` is set per hop) and direction.
    flow: CtKey,
    way: Way,
    ct: [CtAction; 2],
    first_fragment: Option<FragKey>,
    reply: Option<ReplyPlan>,
    /// The packet as flow logs see it (ENI, direction and action filled per hop).
    packet: FlowId,
    from_uplink: bool,
    to_uplink: bool,
    /// Where this packet's flow-log accounting went last time (a cached refusal's).
    acct: AcctHint,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            verdict: Verdict::Drop(DropReason::NotIp),
            src: None,
            dst: None,
            dst_mac: Mac::default(),
            l3_offset: 0,
            ethertype: 0,
            ip_len: 0,
            tcp_flags: 0,
            untracked: 0,
            flow: CtKey::new(EniId(0), Family::V4, 0, 0, 0, 0, 0, 0).0,
            way: Way::LoToHi,
            ct: [CtAction::Nothing; 2],
            first_fragment: None,
            reply: None,
            packet: FlowId {
                eni: EniId(0),
                egress: false,
                accept: true,
                to_uplink: false,
                family: Family::V4,
                proto: 0,
                src: 0,
                dst: 0,
                sport: 0,
                dport: 0,
            },
            from_uplink: false,
            to_uplink: false,
            acct: AcctHint::NONE,
        }
    }
}

/// Sizes of the per-core state.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    pub conntrack_entries: u32,
    pub fragment_entries: usize,
    /// Untracked and refused flow directions accounted per interval for flow logs.
    pub flow_entries: usize,
    /// Decisions the flow cache keeps (64 bytes each; 0 turns it off). Eight per
    /// flow in the working set keeps misses from set conflicts near 1%.
    pub flow_cache_entries: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            conntrack_entries: 262_144,
            fragment_entries: 4096,
            flow_entries: 65_536,
            flow_cache_entries: 32_768,
        }
    }
}

/// One core's pipeline and the state it owns.
pub struct Pipeline {
    pub conntrack: Conntrack,
    fragments: FragmentCache,
    pub stats: Stats,
    generation: Option<u64>,
    /// The table snapshot the flow cache's decisions belong to.
    snapshot: u64,
    cache: FlowCache,
    /// Conntrack's serial wraps the cache's entry references belong to.
    serial_wraps: u32,
    timeouts_epoch: u64,
    /// Start of the next clock second: conntrack reclaims once per second.
    next_second: Nanos,
    /// Flow-log accounting of traffic conntrack does not track.
    flows: FlowTable,
    /// Where the current frame was accounted in `flows`, for the flow cache to keep
    /// with a refusal.
    acct: AcctHint,
    /// End of the current accounting interval.
    next_flush: Nanos,
    /// Flows of finished intervals, for the worker to hand on (their records are
    /// made by the flow-log thread), with the ENI details of the snapshot they were
    /// flushed under, and records already made (SKIPDATA).
    finished: Vec<FinishedFlow>,
    metas: Option<(u64, FlowMetas)>,
    made: Vec<FlowRecord>,
    /// An emptied `finished` vector the flow-log thread gave back, for the next flush.
    spare_flows: Vec<FinishedFlow>,
    /// Sampled heaviest flows, for `vpcgate top`.
    pub top: TopFlows,
}

/// The L4 identity of a packet: ports for TCP/UDP, the identifier (as both ports)
/// and request type for ICMP queries, nothing otherwise.
struct FlowPorts {
    sport: u16,
    dport: u16,
    icmp_query: u8,
    trackable: bool,
}

fn flow_ports(l4: &L4) -> FlowPorts {
    match *l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => {
            FlowPorts { sport, dport, icmp_query: 0, trackable: true }
        }
        L4::Icmp(icmp) => match icmp.msg {
            IcmpMsg::Query { id, request_type, .. } => {
                FlowPorts { sport: id, dport: id, icmp_query: request_type, trackable: true }
            }
            // Errors are related traffic or nothing; other ICMP has no reply to match.
            _ => FlowPorts { sport: 0, dport: 0, icmp_query: 0, trackable: false },
        },
        L4::Other | L4::NotFirstFragment => FlowPorts { sport: 0, dport: 0, icmp_query: 0, trackable: true },
    }
}

/// The conntrack key (at no particular ENI) of the flow an ICMP error (of `family`,
/// quote at frame offset `quote`) is about. Out of line: only ICMP errors need it.
#[inline(never)]
fn related_key(frame: &[u8], family: Family, quote: u16) -> Option<CtKey> {
    let emb = wire::quoted_flow(frame, family, quote)?;
    let (sport, dport, q) = match emb.l4 {
        EmbeddedL4::Ports { sport, dport } => (sport, dport, 0),
        EmbeddedL4::Query { id, request_type, .. } => (id, id, request_type),
        EmbeddedL4::None => (0, 0, 0),
    };
    Some(CtKey::new(EniId(0), family, emb.proto, emb.src.bits, emb.dst.bits, sport, dport, q).0)
}

impl Pipeline {
    pub fn new(cfg: PipelineConfig) -> Pipeline {
        Pipeline {
            conntrack: Conntrack::new(cfg.conntrack_entries),
            fragments: FragmentCache::new(cfg.fragment_entries),
            stats: Stats::default(),
            generation: None,
            snapshot: 0,
            cache: FlowCache::new(cfg.flow_cache_entries),
            serial_wraps: 0,
            timeouts_epoch: 0,
            next_second: 0,
            flows: FlowTable::new(cfg.flow_entries),
            acct: AcctHint::NONE,
            next_flush: 0,
            finished: Vec::new(),
            metas: None,
            made: Vec::new(),
            spare_flows: Vec::new(),
            top: TopFlows::new(),
        }
    }

    /// Brings per-core state in line with a (possibly new) snapshot and the clock:
    /// sizes per-ENI counters, re-times entries after a timeout change, reclaims
    /// expired entries once per clock second. Cheap when nothing changed.
    #[inline]
    pub fn sync(&mut self, t: &Tables, now: Nanos) {
        if self.generation != Some(t.generation) {
            self.conntrack.ensure_enis(t.enis.len());
            self.stats.ensure_enis(t.enis.len());
            if self.generation.is_some() && self.timeouts_epoch != t.timeouts_epoch {
                self.conntrack.retime(now, t.published_at, |e| t.eni(e).map(|e| e.timeouts));
            }
            self.generation = Some(t.generation);
            self.timeouts_epoch = t.timeouts_epoch;
        }
        if self.snapshot != t.snapshot {
            self.cache.clear();
            self.snapshot = t.snapshot;
        }
        if now >= self.next_second {
            if t.flow_interval_secs > 0 && now >= self.next_flush {
                self.flush_accounting(t, now);
            }
            self.conntrack.advance(now, |e| t.eni(e).map(|e| e.timeouts));
            self.top.retune(now);
            self.next_second = (now / NANOS_PER_SEC + 1) * NANOS_PER_SEC;
        }
    }

    /// Ends the interval: everything accounted so far is kept for
    /// [`Pipeline::take_records`], and the interval `now` is in starts.
    pub fn flush_accounting(&mut self, t: &Tables, now: Nanos) {
        let interval = t.flow_interval_secs.max(1) as u64;
        let end = self.next_flush / NANOS_PER_SEC;
        let metas = self.metas_of(t);
        // One allocation for the interval's flows (an interval of new flows can
        // finish a million): growing by doubling would copy them over and over. A
        // vector given back by the flow-log thread is used first.
        if self.finished.is_empty() && self.spare_flows.capacity() > self.finished.capacity() {
            std::mem::swap(&mut self.finished, &mut self.spare_flows);
        }
        self.finished.reserve(self.conntrack.accounting_pending() + self.flows.len());
        let finished = &mut self.finished;
        let mut emit = |id: &FlowId, a: &Acct| {
            if metas.get(id.eni.0 as usize).is_some_and(Option::is_some) {
                finished.push((*id, *a));
            }
        };
        self.conntrack.drain_accounting(&mut emit);
        self.flows.drain(&mut emit);
        for (eni, _) in self.flows.take_skipped() {
            if let Some(meta) = metas.get(eni.0 as usize).and_then(Option::as_ref) {
                self.made.push(accounting::skipdata(meta, end.saturating_sub(interval), end.saturating_sub(1)));
            }
        }
        let now_s = now / NANOS_PER_SEC;
        self.next_flush = (now_s / interval + 1) * interval * NANOS_PER_SEC;
    }

    /// The ENI details of `t`, made once per snapshot. Flows still waiting from an
    /// earlier snapshot get their records made first, with that snapshot's details.
    fn metas_of(&mut self, t: &Tables) -> FlowMetas {
        match &self.metas {
            Some((snapshot, metas)) if *snapshot == t.snapshot => return metas.clone(),
            _ => {}
        }
        if !self.finished.is_empty() {
            let old = self.take_records();
            self.made = old.records();
            self.recycle_flows(old.into_spare());
        }
        let metas = accounting::flow_metas(t);
        self.metas = Some((t.snapshot, metas.clone()));
        metas
    }

    /// Whether finished intervals left flow records to take.
    #[inline]
    pub fn has_records(&self) -> bool {
        !self.finished.is_empty() || !self.made.is_empty()
    }

    /// The flow records of finished intervals.
    pub fn take_records(&mut self) -> RecordBatch {
        RecordBatch {
            metas: self.metas.as_ref().map_or_else(|| std::sync::Arc::from([]), |(_, m)| m.clone()),
            flows: std::mem::take(&mut self.finished),
            made: std::mem::take(&mut self.made),
        }
    }

    /// Whether a vector given back with [`Pipeline::recycle_flows`] would be kept
    /// (none is held).
    #[inline]
    pub fn wants_spare_flows(&self) -> bool {
        self.spare_flows.capacity() == 0
    }

    /// While no spare is held, takes one from `spare` (a vector the flow-log thread
    /// gave back, if any): what the worker loop does after every hand-off.
    #[inline]
    pub fn restock_flows(&mut self, spare: impl FnOnce() -> Option<Vec<FinishedFlow>>) {
        if self.wants_spare_flows() {
            if let Some(v) = spare() {
                self.recycle_flows(v);
            }
        }
    }

    /// Gives up the spare flows vector held (empty if none), so a caller that
    /// replaces this pipeline keeps the memory circulating as one long-lived worker
    /// would (the benchmark builds a pipeline per run).
    pub fn take_spare_flows(&mut self) -> Vec<FinishedFlow> {
        // A flush with nothing to hand on leaves the spare in place of `finished`.
        if self.finished.is_empty() && self.finished.capacity() > self.spare_flows.capacity() {
            std::mem::swap(&mut self.finished, &mut self.spare_flows);
        }
        std::mem::take(&mut self.spare_flows)
    }

    /// Keeps a flows vector the flow-log thread has emptied
    /// ([`RecordBatch::into_spare`]; the larger, if one is held), so the next
    /// flush writes into memory that is already mapped. Into fresh memory an
    /// interval of a million new flows faults in ~100 MB, which costs the worker
    /// more than the flush itself (`pipeline-bench --flowlog-cost`).
    pub fn recycle_flows(&mut self, mut spare: Vec<FinishedFlow>) {
        if spare.capacity() > self.spare_flows.capacity() {
            spare.clear();
            self.spare_flows = spare;
        }
    }

    /// Runs a batch: one outcome per frame, frames rewritten in place.
    pub fn process(&mut self, t: &Tables, frames: &mut [Frame<'_>], out: &mut [Outcome]) {
        for (frame, o) in frames.iter_mut().zip(out.iter_mut()) {
            *o = self.process_frame(t, frame, &mut ());
        }
    }

    #[inline]
    pub fn process_frame<E: Explain>(&mut self, t: &Tables, frame: &mut Frame<'_>, ex: &mut E) -> Outcome {
        self.sync(t, frame.time);
        // A frame of a known flow carries out its cached decision (see `flowcache`).
        let plain = if E::RECORDS { None } else { wire::plain_ipv4(&frame.buf[..frame.len]) };
        let key = plain.map(|p| CacheKey::new(frame.port, &p));
        self.acct = AcctHint::NONE;
        if let (Some(p), Some(key)) = (plain, key) {
            match self.cache.get(&key) {
                Some((_, forward @ Decision::Forward { .. })) => {
                    if let Some(outcome) = self.forward_cached(t, &forward, &p, frame) {
                        return outcome;
                    }
                }
                // A refusal is accounted outside conntrack, by the plan's flow identity.
                Some((at, refusal)) => {
                    self.stats.count_flow_cache_hit();
                    let mut plan = Plan::default();
                    Self::plan_of(&refusal, &p, &mut plan);
                    let outcome = self.commit(t, &plan, frame);
                    if self.acct != plan.acct && self.acct != AcctHint::NONE {
                        self.cache.set_acct(at, self.acct);
                    }
                    return outcome;
                }
                None => {}
            }
        }
        let mut plan = Plan::default();
        // A plain frame is not parsed a second time.
        let parsed = plain.map_or_else(|| wire::parse(&frame.buf[..frame.len]), |p| Ok(p.packet()));
        self.decide_parsed(t, &frame.buf[..frame.len], parsed, frame.port, frame.time, ex, &mut plan);
        ex.step(|| Step::Verdict(plan.verdict));
        let outcome = self.commit(t, &plan, frame);
        // Entries are only opened here: if their serials wrapped, the cache's
        // (slot, serial) references could name later entries.
        if self.conntrack.serial_wraps() != self.serial_wraps {
            self.serial_wraps = self.conntrack.serial_wraps();
            self.cache.clear();
        }
        if let Some(key) = key {
            self.remember(key, &plan);
        }
        outcome
    }

    /// Carries out a cached forward if it is still good: every conntrack entry it
    /// names is the same entry and live at the frame's time (what `find` would have
    /// answered). `None`: the frame is judged in full.
    ///
    /// This is what `commit` does with a plan whose hops are live entries, without
    /// building the plan: filling a plan (a few hundred bytes) and walking `commit`'s
    /// general case was a fifth of a cached frame's instructions.
    #[inline]
    fn forward_cached(
        &mut self,
        t: &Tables,
        decision: &Decision,
        p: &wire::PlainV4,
        frame: &mut Frame<'_>,
    ) -> Option<Outcome> {
        let Decision::Forward { egress, dst_mac, way, hops, .. } = *decision else {
            return None;
        };
        let now = frame.time;
        if !hops.iter().flatten().all(|(_, r)| self.conntrack.is_live(r.idx, r.serial, now)) {
            return None;
        }
        self.stats.count_flow_cache_hit();
        self.stats.count(Verdict::Forward(egress), frame.len);
        let bytes = p.ip_len as u64;
        if self.top.tick(now) {
            self.sample_cached(decision, p, now);
        }
        for (eni, r) in hops.iter().flatten() {
            self.touch_hop(t, *eni, r.idx, way, p.tcp_flags, bytes, now);
        }
        let [src, dst] = hops.map(|h| h.map(|(eni, _)| eni));
        Some(self.forwarded(egress, src, dst, bytes, frame, |buf| {
            reply::rewrite_ethernet(buf, 14, dst_mac, t.router_mac, ETHERTYPE_IPV4)
        }))
    }

    /// Fills `plan` (a default one) with what a cached decision stands for: the plan
    /// `decide` would make (the fields `commit` and `sample_top` read).
    fn plan_of(decision: &Decision, p: &wire::PlainV4, plan: &mut Plan) {
        match *decision {
            Decision::Forward { egress, dst_mac, way, hops, from_uplink, to_uplink } => {
                plan.verdict = Verdict::Forward(egress);
                plan.src = hops[0].map(|h| h.0);
                plan.dst = hops[1].map(|h| h.0);
                plan.dst_mac = dst_mac;
                plan.way = way;
                plan.ct = hops.map(|h| h.map_or(CtAction::Nothing, |(eni, r)| CtAction::Touch(eni, r.idx)));
                plan.from_uplink = from_uplink;
                plan.to_uplink = to_uplink;
            }
            Decision::NaclIngressReject { dst, dst_mac, acct } => {
                plan.verdict = Verdict::Reject(Hop::NaclIngress);
                plan.dst = Some(dst);
                plan.dst_mac = dst_mac;
                plan.from_uplink = true;
                plan.acct = acct;
            }
        }
        plan.l3_offset = 14;
        plan.ethertype = ETHERTYPE_IPV4;
        plan.ip_len = p.ip_len;
        plan.tcp_flags = p.tcp_flags;
        plan.packet.proto = p.proto;
        plan.packet.src = p.src as u128;
        plan.packet.dst = p.dst as u128;
        plan.packet.sport = p.sport;
        plan.packet.dport = p.dport;
    }

    /// Samples a cached forward for `vpcgate top` (one decision in `top.every()`).
    #[cold]
    fn sample_cached(&mut self, decision: &Decision, p: &wire::PlainV4, now: Nanos) {
        let mut plan = Plan::default();
        Self::plan_of(decision, p, &mut plan);
        self.sample_top(&plan, p.ip_len as u64, now);
    }

    /// Caches a carried-out plan of a plain frame if it may be (see `flowcache`).
    #[inline]
    fn remember(&mut self, key: CacheKey, plan: &Plan) {
        let decision = match plan.verdict {
            Verdict::Forward(egress) if plan.first_fragment.is_none() => {
                let mut hops = [None; 2];
                for (hop, (action, eni)) in hops.iter_mut().zip(plan.ct.into_iter().zip([plan.src, plan.dst])) {
                    match (action, eni) {
                        (CtAction::Touch(e, idx), Some(_)) => {
                            *hop = Some((e, CtRef { idx, serial: self.conntrack.serial(idx) }))
                        }
                        // The uplink side: nothing to track there.
                        (CtAction::Nothing, None) => {}
                        // A new or untracked flow: judged in full next time too.
                        _ => return,
                    }
                }
                Decision::Forward {
                    egress,
                    dst_mac: plan.dst_mac,
                    way: plan.way,
                    hops,
                    from_uplink: plan.from_uplink,
                    to_uplink: plan.to_uplink,
                }
            }
            Verdict::Reject(Hop::NaclIngress) if plan.from_uplink => match plan.dst {
                Some(dst) => Decision::NaclIngressReject { dst, dst_mac: plan.dst_mac, acct: self.acct },
                None => return,
            },
            _ => return,
        };
        self.cache.insert(key, decision);
    }

    /// Judges a frame against the current state without changing anything; the
    /// conclusion goes into `plan` (start from `Plan::default()`).
    pub fn decide<E: Explain>(&self, t: &Tables, frame: &[u8], port: PortId, now: Nanos, ex: &mut E, plan: &mut Plan) {
        self.decide_parsed(t, frame, wire::parse(frame), port, now, ex, plan)
    }

    /// [`Pipeline::decide`] for a frame already parsed (`parsed` is `wire::parse(frame)`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decide_parsed<E: Explain>(
        &self,
        t: &Tables,
        frame: &[u8],
        parsed: Result<Packet, Malformed>,
        port: PortId,
        now: Nanos,
        ex: &mut E,
        plan: &mut Plan,
    ) {
        let pkt = match parsed {
            Ok(p) => p,
            Err(m) => return plan.verdict = Verdict::Drop(DropReason::Malformed(m)),
        };
        ex.step(|| Step::Parsed(pkt));
        let src = match forward::source(t, port, pkt.src_mac) {
            Ok(s) => s,
            Err(r) => return plan.verdict = Verdict::Drop(r),
        };
        ex.step(|| Step::Source(src));
        match pkt.kind {
            Kind::OtherEthertype(_) => plan.verdict = Verdict::Drop(DropReason::NotIp),
            Kind::Arp(arp) => {
                let answered = neighbor::answers_arp(t, src, &arp);
                ex.step(|| Step::Neighbor { answered });
                if answered {
                    plan.verdict = Verdict::Reply;
                    plan.reply = Some(ReplyPlan::Arp(arp));
                } else {
                    plan.verdict = Verdict::Drop(DropReason::ArpIgnored);
                }
            }
            Kind::Ip(ip) => plan.verdict = self.decide_ip(t, frame, &pkt, &ip, src, now, ex, plan),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_ip<E: Explain>(
        &self,
        t: &Tables,
        frame: &[u8],
        pkt: &Packet,
        ip: &IpPacket,
        src: Source,
        now: Nanos,
        ex: &mut E,
        plan: &mut Plan,
    ) -> Verdict {
        if let L4::Icmp(icmp) = ip.l4 {
            match icmp.msg {
                IcmpMsg::NeighborSolicit { at } => {
                    let fields = wire::neighbor_solicitation(frame, at);
                    let answered = fields.is_some_and(|(target, _)| neighbor::answers_solicit(t, src, ip, target));
                    ex.step(|| Step::Neighbor { answered });
                    let (Some((target, source_ll)), true) = (fields, answered) else {
                        return Verdict::Drop(DropReason::NdIgnored);
                    };
                    let to_mac = source_ll.unwrap_or(pkt.src_mac);
                    plan.reply = Some(ReplyPlan::Advert { target, to: ip.src, to_mac });
                    return Verdict::Reply;
                }
                IcmpMsg::NeighborDiscovery => {
                    ex.step(|| Step::Neighbor { answered: false });
                    return Verdict::Drop(DropReason::NdIgnored);
                }
                _ => {}
            }
        }

        // Non-policy drops, in the spec's order: source check, then route.
        plan.src = src.eni();
        let checked = forward::check_source(t, src, ip.src_ip());
        if let Source::Eni(e) = src {
            ex.step(|| {
                let eni = t.eni(e);
                Step::SourceCheck {
                    eni: e,
                    enforced: eni.is_some_and(|x| x.source_dest_check),
                    owned: eni.is_some_and(|x| x.owns(ip.src_ip())),
                }
            });
        }
        if let Err(r) = checked {
            return Verdict::Drop(r);
        }
        let dest = match forward::route(t, src, ip.dst_ip()) {
            Ok(d) => d,
            Err(r) => return Verdict::Drop(r),
        };
        ex.step(|| Step::Route(dest));
        let Some((egress_port, dst_mac)) = forward::egress(t, dest) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let family = ip.family();
        plan.dst = dest.eni();
        plan.from_uplink = matches!(src, Source::Uplink(_));
        plan.to_uplink = matches!(dest, forward::Dest::Uplink(_));
        plan.dst_mac = dst_mac;
        plan.l3_offset = pkt.l3_offset;
        plan.ethertype = if family == Family::V4 { ETHERTYPE_IPV4 } else { ETHERTYPE_IPV6 };
        plan.ip_len = ip.ip_len;
        plan.tcp_flags = if let L4::Tcp { flags, .. } = ip.l4 { flags } else { 0 };

        // Later fragments carry no ports: they share the first fragment's fate.
        if let Some(frag) = ip.frag {
            let key = FragKey {
                family,
                src: ip.src,
                dst: ip.dst,
                proto: if family == Family::V4 { ip.proto } else { 0 },
                id: frag.id,
            };
            if !frag.is_first() {
                let found = self.fragments.get(&key, now);
                let remembered = found.map(|f| f.0);
                ex.step(|| Step::FragmentFollows { remembered });
                if let Some((_, (sport, dport))) = found {
                    plan.packet =
                        FlowId { family, proto: ip.proto, src: ip.src, dst: ip.dst, sport, dport, ..plan.packet };
                }
                return match remembered {
                    None => Verdict::Drop(DropReason::FragmentOrphan),
                    Some(Remembered::Forward { port, dst_mac }) => {
                        plan.dst_mac = dst_mac;
                        Verdict::Forward(port)
                    }
                    Some(Remembered::Reject(hop)) => Verdict::Reject(hop),
                    Some(Remembered::ConntrackFull) => Verdict::Drop(DropReason::ConntrackFull),
                };
            }
            plan.first_fragment = Some(key);
        }

        let key16 = rule_key(&ip.l4);
        let (log_sport, log_dport) = match ip.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
            _ => (0, 0),
        };
        plan.packet = FlowId {
            family,
            proto: ip.proto,
            src: ip.src,
            dst: ip.dst,
            sport: log_sport,
            dport: log_dport,
            ..plan.packet
        };
        let src_eni = src.eni().and_then(|e| t.eni(e));
        let dst_eni = dest.eni().and_then(|e| t.eni(e));
        // From the uplink the destination NACL is the first hop: judge it before
        // making the conntrack key, which a refusal there does not need.
        if let (None, Some(b)) = (src_eni, dst_eni) {
            if !Self::nacl_hop(t, b.subnet, Hop::NaclIngress, ip, key16, ex) {
                return Verdict::Reject(Hop::NaclIngress);
            }
        }
        let hop = HopInput::new(frame, ip, key16, now);

        if let Some(a) = src_eni {
            match self.sg_hop(a, Hop::SgEgress, &hop, ex) {
                Some(action) => plan.ct[0] = action,
                None => return Verdict::Reject(Hop::SgEgress),
            }
            if dst_eni.is_none_or(|b| b.subnet != a.subnet)
                && !Self::nacl_hop(t, a.subnet, Hop::NaclEgress, ip, key16, ex)
            {
                return Verdict::Reject(Hop::NaclEgress);
            }
        }
        if let Some(b) = dst_eni {
            // (Judged above when the packet came from the uplink.)
            if src_eni.is_some_and(|a| a.subnet != b.subnet)
                && !Self::nacl_hop(t, b.subnet, Hop::NaclIngress, ip, key16, ex)
            {
                return Verdict::Reject(Hop::NaclIngress);
            }
            match self.sg_hop(b, Hop::SgIngress, &hop, ex) {
                Some(action) => plan.ct[1] = action,
                None => return Verdict::Reject(Hop::SgIngress),
            }
        }
        // Only a packet that passed every hop needs its flow in the plan.
        (plan.flow, plan.way) = (hop.flow, hop.way);
        plan.untracked = plan.ct.iter().filter(|a| **a == CtAction::Untracked).count() as u8;

        // New entries need room; established flows are never affected.
        let mut needs = [EniId(0); 2];
        let mut n = 0;
        for a in &plan.ct {
            if let CtAction::Open(eni, Found::Missing) = *a {
                needs[n] = eni;
                n += 1;
            }
        }
        if n > 0 && !self.conntrack.has_room(&needs[..n], t.ct_limits.max_entries_per_eni) {
            ex.step(|| Step::ConntrackFull);
            return Verdict::Drop(DropReason::ConntrackFull);
        }
        Verdict::Forward(egress_port)
    }

    /// A security-group hop: conntrack first (a tracked flow, or an ICMP error about
    /// one), the rules on a miss. `Some` carries the conntrack change to make if the
    /// frame is forwarded; `None` means refused.
    fn sg_hop<E: Explain>(&self, eni: &Eni, hop: Hop, h: &HopInput<'_>, ex: &mut E) -> Option<CtAction> {
        let dir = hop.direction();
        let ip = h.ip;
        if let Some(related) = h.related {
            if let Found::Live(idx) = self.conntrack.find(&related.at(eni.key), h.now) {
                ex.step(|| Step::Sg { hop, eni: eni.key, decision: SgDecision::Related(self.view(idx)) });
                return Some(CtAction::Nothing);
            }
        }
        let key = h.flow.at(eni.key);
        let found = if h.ports.trackable { self.conntrack.find(&key, h.now) } else { Found::Missing };
        if let Found::Live(idx) = found {
            ex.step(|| Step::Sg { hop, eni: eni.key, decision: SgDecision::Tracked(self.view(idx)) });
            return Some(CtAction::Touch(eni.key, idx));
        }
        let peer = if dir == Direction::Ingress { ip.src } else { ip.dst };
        let Some(rule) = eni.sg(dir).judge(ip.family(), ip.proto, h.key16, peer) else {
            ex.step(|| Step::Sg { hop, eni: eni.key, decision: SgDecision::NoRule });
            return None;
        };
        let other: &sg::SgDirection = if dir == Direction::Ingress { &eni.sg_egress } else { &eni.sg_ingress };
        let (tracking, action) = if !h.ports.trackable {
            (Tracking::NotTracked, CtAction::Nothing)
        } else if let Some(why) = sg::untracked(eni.sg(dir), other, ip.family(), ip.proto, h.ports.sport, h.ports.dport)
        {
            (Tracking::Untracked(why), CtAction::Untracked)
        } else {
            (Tracking::New, CtAction::Open(eni.key, found))
        };
        ex.step(|| Step::Sg { hop, eni: eni.key, decision: SgDecision::Rule { rule, tracking } });
        Some(action)
    }

    fn nacl_hop<E: Explain>(t: &Tables, subnet: u16, hop: Hop, ip: &IpPacket, key16: u16, ex: &mut E) -> bool {
        let nacl_idx = t.subnets[subnet as usize].nacl;
        let nacl = &t.nacls[nacl_idx as usize];
        let (table, peer) = match hop.direction() {
            Direction::Egress => (&nacl.egress, ip.dst),
            Direction::Ingress => (&nacl.ingress, ip.src),
        };
        let matched = table.judge(ip.family(), ip.proto, key16, peer);
        ex.step(|| Step::Nacl { hop, subnet, nacl: nacl_idx, matched });
        matched.allow
    }

    fn view(&self, idx: u32) -> CtView {
        self.conntrack.view(idx)
    }

    /// Carries out a plan: conntrack, fragment memory, counters, and the frame rewrite.
    pub fn commit(&mut self, t: &Tables, plan: &Plan, frame: &mut Frame<'_>) -> Outcome {
        let now = frame.time;
        let mut outcome = Outcome { verdict: plan.verdict, head: 0, len: 0 };
        self.stats.count(plan.verdict, frame.len);
        if let Some(key) = plan.first_fragment {
            let remembered = match plan.verdict {
                Verdict::Forward(port) => Some(Remembered::Forward { port, dst_mac: plan.dst_mac }),
                Verdict::Reject(hop) => Some(Remembered::Reject(hop)),
                Verdict::Drop(DropReason::ConntrackFull) => Some(Remembered::ConntrackFull),
                _ => None,
            };
            if let Some(r) = remembered {
                self.fragments.remember(key, r, (plan.packet.sport, plan.packet.dport), now);
            }
        }
        let bytes = plan.ip_len as u64;
        if matches!(plan.verdict, Verdict::Forward(_) | Verdict::Reject(_)) && self.top.tick(now) {
            self.sample_top(plan, bytes, now);
        }
        match plan.verdict {
            Verdict::Forward(port) => {
                for (hop, action) in plan.ct.into_iter().enumerate() {
                    // Hop 0 is the source ENI's egress, hop 1 the destination ENI's ingress.
                    let egress = hop == 0;
                    match action {
                        CtAction::Touch(eni, idx) => {
                            self.touch_hop_outlined(t, eni, idx, plan.way, plan.tcp_flags, bytes, now)
                        }
                        CtAction::Open(eni, found) => {
                            if let Some(e) = t.eni(eni) {
                                let opening = Opening {
                                    way: plan.way,
                                    tcp_flags: plan.tcp_flags,
                                    egress,
                                    to_uplink: if egress { plan.to_uplink } else { plan.from_uplink },
                                    count: e.flow_meta.is_some().then_some(bytes),
                                };
                                self.conntrack.open(found, plan.flow.at(eni), opening, now, &e.timeouts);
                            }
                        }
                        CtAction::Nothing | CtAction::Untracked => {
                            let eni = if egress { plan.src } else { plan.dst };
                            self.account(t, plan, eni, egress, true, bytes, now);
                        }
                    }
                }
                self.stats.count_untracked(plan.untracked);
                outcome = self.forwarded(port, plan.src, plan.dst, bytes, frame, |buf| {
                    reply::rewrite_ethernet(buf, plan.l3_offset as usize, plan.dst_mac, t.router_mac, plan.ethertype)
                });
            }
            Verdict::Reply => {
                let len = match plan.reply {
                    Some(ReplyPlan::Arp(arp)) => Some(reply::arp_reply(frame.buf, &arp, t.router_mac)),
                    Some(ReplyPlan::Advert { target, to, to_mac }) => {
                        reply::neighbor_advert(frame.buf, target, to, to_mac, t.router_mac)
                    }
                    None => None,
                };
                match len {
                    Some(len) => outcome.len = len,
                    // No room in the buffer for the answer: count it as not answered.
                    None => outcome.verdict = Verdict::Drop(DropReason::NdIgnored),
                }
            }
            Verdict::Reject(hop) => {
                // Refused at the destination: it did leave the source (ACCEPT there).
                // Counted out there too: OutPackets is what the flow log calls ACCEPT egress.
                if hop.direction() == Direction::Ingress {
                    self.account(t, plan, plan.src, true, true, bytes, now);
                    if let Some(c) = plan.src.and_then(|e| self.stats.eni(e)) {
                        c.sent(bytes);
                    }
                }
                let eni = if hop.direction() == Direction::Egress { plan.src } else { plan.dst };
                self.account(t, plan, eni, hop.direction() == Direction::Egress, false, bytes, now);
                if let Some(c) = eni.and_then(|e| self.stats.eni(e)) {
                    c.reject(hop.direction() == Direction::Egress, bytes);
                }
            }
            Verdict::Drop(DropReason::ConntrackFull) => {
                for action in plan.ct {
                    if let CtAction::Open(eni, Found::Missing) = action {
                        if let Some(s) = self.stats.eni(eni) {
                            s.conntrack_allowance_exceeded += 1;
                        }
                    }
                }
            }
            Verdict::Drop(DropReason::SrcDstCheck) => {
                if let Some(c) = plan.src.and_then(|e| self.stats.eni(e)) {
                    c.srcdst_check_dropped += 1;
                }
            }
            Verdict::Drop(_) => {}
        }
        outcome
    }

    /// Refreshes the live entry `idx` at one ENI hop of a forwarded packet, counting
    /// the packet for flow logs if the ENI has one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn touch_hop(&mut self, t: &Tables, eni: EniId, idx: u32, way: Way, tcp_flags: u8, bytes: u64, now: Nanos) {
        if let Some(e) = t.eni(eni) {
            let count = e.flow_meta.is_some().then_some(bytes);
            self.conntrack.touch(idx, way, tcp_flags, now, &e.timeouts, count);
        }
    }

    /// [`Pipeline::touch_hop`] as a call, for `commit`: inlined there, it made the
    /// commit of every plan bigger (new flows 4% slower, callgrind and wall time).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn touch_hop_outlined(
        &mut self,
        t: &Tables,
        eni: EniId,
        idx: u32,
        way: Way,
        tcp_flags: u8,
        bytes: u64,
        now: Nanos,
    ) {
        self.touch_hop(t, eni, idx, way, tcp_flags, bytes, now);
    }

    /// Counts a forwarded packet (`bytes` of IP) as leaving `src` and entering `dst`,
    /// rewrites its Ethernet header with `rewrite` (which returns where the frame now
    /// starts) and sends it out of `egress`.
    #[inline(always)]
    fn forwarded(
        &mut self,
        egress: PortId,
        src: Option<EniId>,
        dst: Option<EniId>,
        bytes: u64,
        frame: &mut Frame<'_>,
        rewrite: impl FnOnce(&mut [u8]) -> usize,
    ) -> Outcome {
        if let Some(c) = src.and_then(|e| self.stats.eni(e)) {
            c.sent(bytes);
        }
        if let Some(c) = dst.and_then(|e| self.stats.eni(e)) {
            c.received(bytes);
        }
        Outcome { verdict: Verdict::Forward(egress), head: rewrite(frame.buf), len: 14 + bytes as usize }
    }

    /// Counts a packet for flow logs at `eni` (if it has one) outside conntrack.
    /// Refused packets are counted inline: where every packet is refused, the table
    /// lookup (about 90 instructions) is most of the work, and calling it out of line
    /// added another 30. Accepted untracked packets are counted out of line, which
    /// keeps the forwarding loop small for the traffic that has no flow log.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn account(
        &mut self,
        t: &Tables,
        plan: &Plan,
        eni: Option<EniId>,
        egress: bool,
        accept: bool,
        bytes: u64,
        now: Nanos,
    ) {
        if let Some(eni) = eni.filter(|&e| t.eni(e).is_some_and(|e| e.flow_meta.is_some())) {
            if accept {
                self.account_accepted(plan, eni, egress, bytes, now);
            } else {
                self.account_at(plan, eni, egress, false, bytes, now);
            }
        }
    }

    #[inline(never)]
    fn account_accepted(&mut self, plan: &Plan, eni: EniId, egress: bool, bytes: u64, now: Nanos) {
        self.account_at(plan, eni, egress, true, bytes, now);
    }

    #[inline(always)]
    fn account_at(&mut self, plan: &Plan, eni: EniId, egress: bool, accept: bool, bytes: u64, now: Nanos) {
        let id = || FlowId { eni, egress, accept, to_uplink: egress && plan.to_uplink, ..plan.packet };
        self.acct = self.flows.add_hinted(plan.acct, id, bytes, now, plan.tcp_flags);
    }

    /// Counts a sampled decision to the top-flows table at each ENI it passed.
    #[cold]
    fn sample_top(&mut self, plan: &Plan, bytes: u64, now: Nanos) {
        let at = |eni: EniId, egress: bool, accept: bool| FlowId {
            eni,
            egress,
            accept,
            to_uplink: egress && plan.to_uplink,
            ..plan.packet
        };
        let (left, refused) = match plan.verdict {
            Verdict::Forward(_) => (true, None),
            Verdict::Reject(hop) => (hop.direction() == Direction::Ingress, Some(hop)),
            _ => return,
        };
        if left {
            if let Some(src) = plan.src {
                self.top.record(&at(src, true, true), None, bytes, now);
            }
        }
        match refused {
            None => {
                if let Some(dst) = plan.dst {
                    self.top.record(&at(dst, false, true), None, bytes, now);
                }
            }
            Some(hop) => {
                let egress = hop.direction() == Direction::Egress;
                if let Some(eni) = if egress { plan.src } else { plan.dst } {
                    self.top.record(&at(eni, egress, false), Some(hop), bytes, now);
                }
            }
        }
    }

    /// Conntrack entries still available on this core for `eni`
    /// (`conntrack_allowance_available`).
    pub fn conntrack_available(&self, t: &Tables, eni: EniId) -> u32 {
        let table = self.conntrack.capacity() - self.conntrack.len();
        let mine = t.ct_limits.max_entries_per_eni.saturating_sub(self.conntrack.eni_len(eni));
        table.min(mine)
    }
}

/// What both security-group hops of a packet look at.
struct HopInput<'a> {
    ip: &'a IpPacket,
    key16: u16,
    ports: FlowPorts,
    flow: CtKey,
    way: Way,
    /// For an ICMP error: the flow it is about.
    related: Option<CtKey>,
    now: Nanos,
}

impl<'a> HopInput<'a> {
    #[inline(always)]
    fn new(frame: &[u8], ip: &'a IpPacket, key16: u16, now: Nanos) -> HopInput<'a> {
        let ports = flow_ports(&ip.l4);
        let (flow, way) =
            CtKey::new(EniId(0), ip.family(), ip.proto, ip.src, ip.dst, ports.sport, ports.dport, ports.icmp_query);
        let related = match ip.l4 {
            L4::Icmp(wire::Icmp { msg: IcmpMsg::Error { quote }, .. }) => related_key(frame, ip.family(), quote),
            _ => None,
        };
        HopInput { ip, key16, ports, flow, way, related, now }
    }
}
