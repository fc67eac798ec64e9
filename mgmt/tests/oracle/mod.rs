//! The independent oracle: a plain evaluator of `spec/aws-semantics.md` (sections
//! 1-3, 7 and 7.1) written straight off the config model. It uses only
//! `mgmt::model` and std: no classifier, no conntrack, no parser, no tables of the
//! real pipeline, and none of `mgmt::validate` / `mgmt::compile`.
//!
//! Linear scans over rules, a `HashMap` for conntrack, a clock in nanoseconds that
//! the caller controls. One worker core, as the test harness runs one pipeline.
//!
//! Readings of the spec where it leaves room (each also noted where it is used):
//! - R1 Non-IP ethertypes (`not-ip`) are classified at the ARP/ND stage, after the
//!   source-MAC check: an LLDP frame from an unknown MAC is `unknown-source`.
//! - R2 ARP/NS are answered for any address inside the requester's VPC CIDRs (the
//!   subnet's `.1` is one of them), and for NS also `fe80::1` and the EUI-64 of
//!   `RouterMac` (the router's link-local addresses, on every port, the uplink
//!   included: first read as "ENI ports only", changed after the differential test
//!   showed the pipeline answering them on the uplink, which the text allows just as
//!   well). On the uplink, for an address inside any VPC's CIDRs.
//! - R3 Uplink frames are not checked against `GatewayMac`: any source MAC.
//! - R4 A destination outside the sender's VPC goes to the uplink, even if it lies in
//!   another VPC of the appliance (VPCs are not peered); no uplink: `no-route`.
//! - R5 The destination MAC of a frame is not checked.
//! - R6 ICMP query entries are keyed on the unordered address pair, the request type
//!   and the identifier: requests and replies in either direction match.
//! - R7 ICMP errors are v4 types 3 and 11, v6 types 1, 2 and 3 (the three kinds
//!   section 7 names); parameter problem and others are "other non-query ICMP".
//!   An error is related when its quoted header is a flow with a live entry at that
//!   ENI, in either orientation. The quote needs only what identifies the flow: the
//!   ports of TCP/UDP (4 bytes), the type and identifier of an ICMP query (6 bytes),
//!   nothing more for other protocols; RFC 792's 8 bytes are not required (the
//!   pipeline reads it the same way; found by the differential test).
//! - R8 The fragment memory keeps the policy-stage verdict (forward with its egress,
//!   reject with its hop, or conntrack-full). A first fragment dropped before the
//!   policy stage leaves nothing. Later fragments neither create nor refresh
//!   conntrack entries. "Remembered for 30 s": alive while age <= 30 s.
//! - R9 Timeout changes apply to live entries; an entry that has already expired
//!   stays expired ("stops matching at once") and keeps the timeout it expired
//!   under until reclaimed. "Already" means at the moment the change is made.
//! - R10 The TCP offset-8 rule (RFC 1858) applies to IPv6 later fragments too.
//! - R11 Entry expiry: expired when idle > timeout (so idle == timeout is live);
//!   reclaimed at the first whole second of the clock strictly after
//!   `last + timeout`.
//! - R12 Capacity: `conntrack_allowance_available` of an ENI is the smaller of the
//!   room left in the core's table (`MaxEntries`, one core here) and in the ENI's
//!   share (`MaxEntriesPerEni`); expired entries count until reclaimed.
//! - R13 A protocol number given for tcp/udp/icmp/icmpv6 (`"6"`, `"17"`, `"1"`,
//!   `"58"`) means the same as the name; host bits in a CIDR are ignored (1.1
//!   canonicalisation).
//! - Not modelled: the fragment memory's 4-way sets of 4096 entries (the tests keep
//!   far fewer fragments in flight) and the spreading of flows over several cores
//!   (the harness runs one).

pub mod packet;
pub mod world;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::rc::Rc;

use mgmt::model::Config;

use packet::{Frag, Parsed, Pkt, L4};
use world::{Eni, SgProto, SgRule, World};

const NS: u64 = 1_000_000_000;

/// The oracle's verdict for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward { port: String, dst_mac: [u8; 6] },
    Reply,
    Reject(&'static str),
    Drop(&'static str),
}

impl Verdict {
    /// The harness's format: `forward:PORT`, `reply`, `reject:HOP`, `drop:REASON`.
    pub fn short(&self) -> String {
        match self {
            Verdict::Forward { port, .. } => format!("forward:{port}"),
            Verdict::Reply => "reply".into(),
            Verdict::Reject(h) => format!("reject:{h}"),
            Verdict::Drop(r) => format!("drop:{r}"),
        }
    }
}

/// What a forwarded frame must look like (7.1 "Routing", "VLAN tags"): untagged,
/// to `dst_mac` from `RouterMac`, the IP datagram byte for byte as it came (no TTL
/// decrement, no checksum change); Ethernet padding may go or stay.
pub fn check_forwarded(input: &[u8], out: &[u8], dst_mac: [u8; 6], router_mac: [u8; 6]) -> Result<(), String> {
    let mut off = 12;
    while off + 4 <= input.len() && matches!(u16::from_be_bytes([input[off], input[off + 1]]), 0x8100 | 0x88a8) {
        off += 4;
    }
    let ethertype = &input[off..off + 2];
    let l3 = &input[off + 2..];
    let ip_len = if ethertype == [0x08, 0x00] {
        u16::from_be_bytes([l3[2], l3[3]]) as usize
    } else {
        40 + u16::from_be_bytes([l3[4], l3[5]]) as usize
    };
    if out.len() < 14 + ip_len {
        return Err(format!("sent {} bytes, the datagram has {ip_len}", out.len()));
    }
    if out[..6] != dst_mac || out[6..12] != router_mac || out[12..14] != *ethertype {
        return Err(format!("sent with Ethernet header {:02x?}", &out[..14]));
    }
    if out[14..14 + ip_len] != l3[..ip_len] {
        return Err("the IP datagram was changed".into());
    }
    Ok(())
}

/// A conntrack key, the same for both orientations of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub proto: u8,
    pub lo: (IpAddr, u16),
    pub hi: (IpAddr, u16),
    /// ICMP queries: request type and identifier.
    pub query: Option<(u8, u16)>,
}

impl FlowKey {
    fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16), query: Option<(u8, u16)>) -> FlowKey {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey { proto, lo, hi, query }
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Tcp { syn_ack_seen: bool, established: bool, fin_orig: bool, fin_reply: bool, closing: bool },
    Udp { orig: u32, reply: u32 },
    Icmp,
    Other,
}

#[derive(Clone, Debug)]
struct Entry {
    /// Who sent the packet that created it: (address, port).
    opener: (IpAddr, u16),
    /// Last forwarded packet, either direction.
    last: u64,
    state: State,
    /// The timeout it expired under, when timeouts changed after it expired (R9).
    frozen: Option<u64>,
}

/// Section 7 / 7.1 timeouts for an entry at an ENI, in seconds.
fn timeout(e: &Entry, eni: &Eni) -> u64 {
    if let Some(t) = e.frozen {
        return t;
    }
    match e.state {
        State::Tcp { closing, established, .. } => {
            if closing {
                10
            } else if established {
                eni.tcp_established
            } else {
                60
            }
        }
        State::Udp { orig, reply } => {
            if orig >= 2 && reply >= 2 {
                eni.udp_stream
            } else {
                eni.udp
            }
        }
        State::Icmp => 30,
        State::Other => 600,
    }
}

fn expired(e: &Entry, eni: &Eni, now: u64) -> bool {
    now.saturating_sub(e.last) > timeout(e, eni) * NS
}

/// "Reclaimed at the first whole second of the appliance clock after it expired":
/// it is expired at any time > last + timeout, so the first whole second is the one
/// right after `floor(last + timeout)`.
fn reclaim_at(e: &Entry, eni: &Eni) -> u64 {
    ((e.last + timeout(e, eni) * NS) / NS + 1) * NS
}

fn update(e: &mut Entry, p: &Pkt, now: u64) {
    e.last = now;
    let orig = (p.src, p.sport().unwrap_or(0)) == e.opener;
    match (&mut e.state, &p.l4) {
        (
            State::Tcp { syn_ack_seen, established, fin_orig, fin_reply, closing },
            L4::Tcp { syn, ack, fin, rst, .. },
        ) => {
            if *rst {
                *closing = true;
            }
            if *fin {
                if orig {
                    *fin_orig = true;
                } else {
                    *fin_reply = true;
                }
                if *fin_orig && *fin_reply {
                    *closing = true;
                }
            }
            // 7.1: once a SYN+ACK was seen, the next segment with ACK and without SYN
            // (either direction) completes the handshake.
            if !*established && *syn_ack_seen && *ack && !*syn {
                *established = true;
            }
            if *syn && *ack {
                *syn_ack_seen = true;
            }
        }
        (State::Udp { orig: o, reply: r }, _) => {
            if orig {
                *o += 1;
            } else {
                *r += 1;
            }
        }
        _ => {}
    }
}

fn new_entry(p: &Pkt, now: u64) -> Entry {
    let state = match p.l4 {
        L4::Tcp { .. } => {
            State::Tcp { syn_ack_seen: false, established: false, fin_orig: false, fin_reply: false, closing: false }
        }
        L4::Udp { .. } => State::Udp { orig: 0, reply: 0 },
        L4::Icmp { .. } => State::Icmp,
        _ => State::Other,
    };
    let mut e = Entry { opener: (p.src, p.sport().unwrap_or(0)), last: now, state, frozen: None };
    update(&mut e, p, now);
    e
}

/// ICMP queries (7.1): the request type of a request or reply, if it is one.
fn query_class(v6: bool, ty: u8) -> Option<u8> {
    if v6 {
        match ty {
            128 | 129 => Some(128),
            _ => None,
        }
    } else {
        match ty {
            8 | 0 => Some(8),
            13 | 14 => Some(13),
            15 | 16 => Some(15),
            17 | 18 => Some(17),
            _ => None,
        }
    }
}

/// R7: destination unreachable (incl. packet too big / frag needed), time exceeded.
fn is_icmp_error(v6: bool, ty: u8) -> bool {
    if v6 {
        matches!(ty, 1..=3)
    } else {
        matches!(ty, 3 | 11)
    }
}

/// The conntrack key of a packet, `None` for non-query ICMP (tracked never).
fn flow_key(p: &Pkt) -> Option<FlowKey> {
    match &p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => {
            Some(FlowKey::new(p.proto, (p.src, *sport), (p.dst, *dport), None))
        }
        L4::Icmp { ty, rest, .. } => query_class(p.v6, *ty)
            .map(|c| FlowKey::new(p.proto, (p.src, 0), (p.dst, 0), Some((c, u16::from_be_bytes([rest[0], rest[1]]))))),
        L4::Other => Some(FlowKey::new(p.proto, (p.src, 0), (p.dst, 0), None)),
        L4::Unknown => None,
    }
}

/// The flow an ICMP error is about.
fn quoted_key(p: &Pkt) -> Option<FlowKey> {
    let L4::Icmp { ty, body, .. } = &p.l4 else {
        return None;
    };
    if !is_icmp_error(p.v6, *ty) {
        return None;
    }
    let q = packet::quoted(p.v6, body)?;
    let be = |i: usize| u16::from_be_bytes([q.l4[i], q.l4[i + 1]]);
    match q.proto {
        6 | 17 if q.l4.len() >= 4 => Some(FlowKey::new(q.proto, (q.src, be(0)), (q.dst, be(2)), None)),
        6 | 17 => None,
        1 | 58 if (q.proto == 58) == p.v6 => {
            if q.l4.len() < 6 {
                return None;
            }
            let c = query_class(p.v6, q.l4[0])?;
            Some(FlowKey::new(q.proto, (q.src, 0), (q.dst, 0), Some((c, be(4)))))
        }
        n => Some(FlowKey::new(n, (q.src, 0), (q.dst, 0), None)),
    }
}

/// What a passed SG hop asks of conntrack if the frame is forwarded.
#[derive(Clone, Copy, Debug)]
enum CtAct {
    Nothing,
    Refresh(FlowKey),
    Create(FlowKey),
}

struct FragMemo {
    at: u64,
    verdict: Verdict,
}

pub struct Oracle {
    pub world: Rc<World>,

    ct: HashMap<(String, FlowKey), Entry>,
    frags: HashMap<(IpAddr, IpAddr, u8, u32), FragMemo>,
    /// The reasoning behind the last verdict.
    pub trace: Vec<String>,
    /// How often each interesting case was met (for coverage reports).
    pub seen: std::collections::BTreeMap<&'static str, u64>,
}

fn fmt_ns(ns: u64) -> String {
    format!("{}.{:09} s", ns / NS, ns % NS)
}

fn special_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_multicast() || a.is_broadcast() || a.is_link_local() || a.is_loopback() || a.is_unspecified()
        }
        IpAddr::V6(a) => {
            a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80 || a.is_loopback() || a.is_unspecified()
        }
    }
}

fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
}

enum Src {
    Eni(usize),
    Uplink,
}

impl Oracle {
    pub fn new(cfg: &Config) -> Oracle {
        Oracle {
            world: Rc::new(World::new(cfg)),
            ct: HashMap::new(),
            frags: HashMap::new(),
            trace: Vec::new(),
            seen: Default::default(),
        }
    }

    /// A config change at `now`, between frames: rules, memberships and timeouts
    /// apply at once; conntrack entries and the fragment memory stay, and an entry
    /// that has already expired keeps the timeout it expired under (R9).
    pub fn set_config(&mut self, cfg: &Config, now: u64) {
        let old = &self.world;
        for ((eni, _), e) in self.ct.iter_mut() {
            if let Some(x) = old.eni_by_id(eni) {
                if e.frozen.is_none() && expired(e, x, now) {
                    e.frozen = Some(timeout(e, x));
                }
            }
        }
        self.world = Rc::new(World::new(cfg));
    }

    /// `conntrack_allowance_available` for an ENI: room left in the core's table and
    /// in the ENI's share, whichever is smaller.
    pub fn available(&self, eni: &str) -> u64 {
        let held = self.ct.keys().filter(|(e, _)| e == eni).count() as u64;
        let table = self.world.max_entries.saturating_sub(self.ct.len() as u64);
        table.min(self.world.max_entries_per_eni.saturating_sub(held))
    }

    /// The live and expired-but-unreclaimed entries, for reports.
    pub fn dump(&self, now: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .ct
            .iter()
            .map(|((eni, k), e)| {
                let st = self.world.eni_by_id(eni).map(|x| timeout(e, x)).unwrap_or(0);
                format!(
                    "entry at {eni}: {k:?} last {} ago, timeout {st} s, {:?}",
                    fmt_ns(now.saturating_sub(e.last)),
                    e.state
                )
            })
            .collect();
        out.sort();
        out
    }

    fn saw(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    fn note(&mut self, s: String) {
        self.trace.push(s);
    }

    /// One frame in on `port` at `now` (ns).
    pub fn process(&mut self, port: &str, frame: &[u8], now: u64) -> Verdict {
        self.trace.clear();
        self.reclaim(now);
        let v = self.decide(port, frame, now);
        self.note(format!("=> {}", v.short()));
        v
    }

    fn reclaim(&mut self, now: u64) {
        let w = &self.world;
        let before = self.ct.len();
        self.ct.retain(|(eni, _), e| match w.eni_by_id(eni) {
            Some(eni) => now < reclaim_at(e, eni),
            None => false,
        });
        if self.ct.len() < before {
            self.saw("ct: entries reclaimed");
        }
    }

    fn decide(&mut self, port_name: &str, frame: &[u8], now: u64) -> Verdict {
        let w = Rc::clone(&self.world);
        let pi = w.port_index(port_name);
        let port = &w.ports[pi];

        // 1. malformed
        let parsed = packet::parse(frame);
        if let Parsed::Malformed(why) = parsed {
            self.saw(why);
            self.note(format!("malformed: {why}"));
            return Verdict::Drop("malformed");
        }

        // 2. unknown source: the ENI whose MAC is the source MAC and which the port
        //    lists. R3: the uplink takes any source MAC.
        let mac = packet::src_mac(frame).unwrap();
        let src = if port.uplink {
            Src::Uplink
        } else {
            match port.enis.iter().find(|&&i| w.enis[i].mac == mac) {
                Some(&i) => {
                    self.note(format!("source ENI {}", w.enis[i].id));
                    Src::Eni(i)
                }
                None => {
                    self.note(format!("no ENI of port {} has MAC {mac:02x?}", port.name));
                    return Verdict::Drop("unknown-source");
                }
            }
        };

        // 3. ARP / ND answers, other ARP / ND / ethertypes (R1, R2).
        let p = match parsed {
            Parsed::Malformed(_) => unreachable!(),
            Parsed::NotIp(t) => {
                self.note(format!("ethertype {t:#06x}"));
                return Verdict::Drop("not-ip");
            }
            Parsed::Arp(a) => {
                let in_scope = |ip: IpAddr| match src {
                    Src::Eni(i) => w.in_vpc(w.enis[i].vpc, ip),
                    Src::Uplink => w.in_any_vpc(ip),
                };
                let answer = a.ethernet_ipv4
                    && a.op == 1
                    && !a.sender_ip.is_unspecified()
                    && a.sender_ip != a.target_ip
                    && in_scope(IpAddr::V4(a.target_ip));
                self.note(format!("ARP op {} {} asks for {}", a.op, a.sender_ip, a.target_ip));
                return if answer { Verdict::Reply } else { Verdict::Drop("arp-ignored") };
            }
            Parsed::Ip(p) => p,
        };
        if p.v6 && p.proto == 58 && p.frag == Frag::Whole {
            if let L4::Icmp { ty, body, .. } = &p.l4 {
                if (133..=137).contains(ty) {
                    let mut answer = false;
                    if *ty == 135 && p.hop_limit == 255 && !p.src.is_unspecified() {
                        if body.len() < 16 {
                            self.note("NS without a target".into());
                            return Verdict::Drop("malformed");
                        }
                        let target = IpAddr::V6(packet::v6(&body[..16]));
                        // R2: the router's own link-local addresses on every port.
                        let router_ll = target == IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))
                            || target == IpAddr::V6(eui64_link_local(w.router_mac));
                        answer = router_ll
                            || match src {
                                Src::Eni(i) => w.in_vpc(w.enis[i].vpc, target),
                                Src::Uplink => w.in_any_vpc(target),
                            };
                        self.note(format!("NS for {target}"));
                    }
                    self.note(format!("neighbour discovery type {ty}"));
                    return if answer { Verdict::Reply } else { Verdict::Drop("nd-ignored") };
                }
            }
        }

        // 4. source/destination check, uplink spoofing.
        match src {
            Src::Eni(i) => {
                let e = &w.enis[i];
                if e.src_dst_check && !e.addrs.contains(&p.src) {
                    self.note(format!("{} is not an address of {}", p.src, e.id));
                    return Verdict::Drop("src-dst-check");
                }
            }
            Src::Uplink => {
                if w.in_any_vpc(p.src) {
                    self.note(format!("uplink frame from VPC address {}", p.src));
                    return Verdict::Drop("unknown-source");
                }
            }
        }

        // 5. route.
        let dst_eni = w.owner(p.dst);
        let egress: Option<(usize, [u8; 6], Option<usize>)> = if special_destination(p.dst) {
            self.note(format!("{} is a special destination", p.dst));
            None
        } else {
            match src {
                Src::Eni(i) => {
                    let vpc = w.enis[i].vpc;
                    match dst_eni {
                        Some(d) if d == i => {
                            self.note("ENI sending to itself".into());
                            None
                        }
                        Some(d) if w.enis[d].vpc == vpc => {
                            let de = &w.enis[d];
                            de.port.map(|pp| (pp, de.mac, Some(d)))
                        }
                        _ if w.in_vpc(vpc, p.dst) => {
                            self.note(format!("{} is in the VPC but no ENI owns it", p.dst));
                            None
                        }
                        _ => w.uplink().map(|u| (u, w.ports[u].gateway.unwrap_or([0; 6]), None)),
                    }
                }
                Src::Uplink => dst_eni.and_then(|d| {
                    let de = &w.enis[d];
                    de.port.map(|pp| (pp, de.mac, Some(d)))
                }),
            }
        };
        let Some((out_port, out_mac, dst_eni)) = egress else {
            return Verdict::Drop("no-route");
        };
        self.note(format!("route to port {}", w.ports[out_port].name));

        if p.v6 {
            self.saw("ipv6: routed frame");
        }
        // 6. later fragments take the first fragment's verdict (R8).
        if let Frag::Later(id) = p.frag {
            let key = (p.src, p.dst, if p.v6 { 0 } else { p.proto }, id);
            let memo = self.frags.get(&key).filter(|m| now.saturating_sub(m.at) <= 30 * NS).map(|m| m.verdict.clone());
            self.saw(if memo.is_some() { "frag: later, remembered" } else { "frag: later, orphan" });
            if memo.is_none() && self.frags.contains_key(&key) {
                self.saw("frag: first fragment older than 30 s");
            }
            if let Some(v) = &memo {
                self.saw(match v {
                    Verdict::Forward { .. } => "frag: later takes a forward",
                    Verdict::Reject(_) => "frag: later takes a reject",
                    _ => "frag: later takes conntrack-full",
                });
            }
            return match memo {
                Some(v) => {
                    self.note("later fragment: remembered verdict".into());
                    v
                }
                _ => {
                    self.note("later fragment without a first".into());
                    Verdict::Drop("fragment-orphan")
                }
            };
        }

        // 7. policy hops in AWS order.
        let v = self.policy(&w, &src, dst_eni, &p, out_port, out_mac, now);
        if let Frag::First(id) = p.frag {
            let key = (p.src, p.dst, if p.v6 { 0 } else { p.proto }, id);
            self.frags.insert(key, FragMemo { at: now, verdict: v.clone() });
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn policy(
        &mut self,
        w: &World,
        src: &Src,
        dst_eni: Option<usize>,
        p: &Pkt,
        out_port: usize,
        out_mac: [u8; 6],
        now: u64,
    ) -> Verdict {
        let src_eni = match src {
            Src::Eni(i) => Some(*i),
            Src::Uplink => None,
        };
        // NACLs are crossed only when the packet leaves / enters a subnet.
        let same_subnet = matches!((src_eni, dst_eni), (Some(a), Some(b)) if w.enis[a].subnet == w.enis[b].subnet);
        let mut acts: Vec<(usize, CtAct)> = Vec::new();
        if let Some(a) = src_eni {
            match self.sg_hop(w, a, true, p, now) {
                Some(act) => acts.push((a, act)),
                None => return Verdict::Reject("sg-egress"),
            }
            if !same_subnet {
                let nacl = &w.subnets[w.enis[a].subnet].nacl;
                let (ok, why) = nacl.allows(true, p.proto, p.dport(), p.icmp(), p.dst);
                self.note(format!("NACL egress: {why} -> {ok}"));
                if !ok {
                    return Verdict::Reject("nacl-egress");
                }
            }
        }
        if let Some(b) = dst_eni {
            if !same_subnet {
                let nacl = &w.subnets[w.enis[b].subnet].nacl;
                let (ok, why) = nacl.allows(false, p.proto, p.dport(), p.icmp(), p.src);
                self.note(format!("NACL ingress: {why} -> {ok}"));
                if !ok {
                    return Verdict::Reject("nacl-ingress");
                }
            }
            match self.sg_hop(w, b, false, p, now) {
                Some(act) => acts.push((b, act)),
                None => return Verdict::Reject("sg-ingress"),
            }
        }

        // Capacity (7.1): new entries at every ENI that needs one, all or nothing.
        // An expired entry not yet reclaimed is replaced in place.
        let mut new_total = 0u64;
        let mut full = false;
        for (eni, act) in &acts {
            if let CtAct::Create(k) = act {
                let id = w.enis[*eni].id.clone();
                if self.ct.contains_key(&(id.clone(), *k)) {
                    self.saw("ct: new entry replaces an expired one in place");
                    continue;
                }
                let held = self.ct.keys().filter(|(e, _)| *e == id).count() as u64;
                if held >= w.max_entries_per_eni {
                    self.saw("ct: ENI share full");
                    self.note(format!("{id} holds {held} entries: full"));
                    full = true;
                }
                new_total += 1;
            }
        }
        if new_total == 2 {
            self.saw("ct: frame needs entries at two ENIs");
        }
        if self.ct.len() as u64 + new_total > w.max_entries {
            self.saw("ct: core table full");
            self.note(format!("core holds {} entries, {new_total} more needed: full", self.ct.len()));
            full = true;
        }
        if full {
            let waiting = self.ct.iter().any(|((eni, _), e)| w.eni_by_id(eni).is_some_and(|x| expired(e, x, now)));
            if waiting {
                self.saw("ct: full while expired entries await reclaim");
            }
            for l in self.dump(now) {
                self.trace.push(format!("  {l}"));
            }
            return Verdict::Drop("conntrack-full");
        }
        for (eni, act) in acts {
            let id = w.enis[eni].id.clone();
            match act {
                CtAct::Nothing => {}
                CtAct::Refresh(k) => {
                    let e = self.ct.get_mut(&(id, k)).unwrap();
                    let before = e.state;
                    update(e, p, now);
                    let after = e.state;
                    match (before, after) {
                        (State::Tcp { established: false, .. }, State::Tcp { established: true, .. }) => {
                            self.saw("tcp: handshake completed")
                        }
                        (State::Tcp { closing: false, .. }, State::Tcp { closing: true, .. }) => {
                            self.saw("tcp: closing (10 s)")
                        }
                        (State::Udp { orig: a, reply: b }, State::Udp { orig: c, reply: d })
                            if !(a >= 2 && b >= 2) && c >= 2 && d >= 2 =>
                        {
                            self.saw("udp: became a stream")
                        }
                        _ => {}
                    }
                }
                CtAct::Create(k) => {
                    self.ct.insert((id, k), new_entry(p, now));
                }
            }
        }
        Verdict::Forward { port: w.ports[out_port].name.clone(), dst_mac: out_mac }
    }

    fn live(&self, w: &World, eni: usize, k: &FlowKey, now: u64) -> bool {
        let e = &w.enis[eni];
        match self.ct.get(&(e.id.clone(), *k)) {
            Some(entry) => !expired(entry, e, now),
            None => false,
        }
    }

    /// One SG hop at ENI `eni`: `None` if refused, else what conntrack should do.
    fn sg_hop(&mut self, w: &World, eni: usize, egress: bool, p: &Pkt, now: u64) -> Option<CtAct> {
        let e = &w.enis[eni];
        let dir = if egress { "egress" } else { "ingress" };
        let key = flow_key(p);
        let peer = if egress { p.dst } else { p.src };
        let rules = w.rules(e, egress);
        let allowed = rules.iter().any(|r| w.rule_matches(r, p.proto, p.dport(), p.icmp(), peer));
        if let Some(k) = key {
            if let Some(entry) = self.ct.get(&(e.id.clone(), k)) {
                let idle = now.saturating_sub(entry.last) as i64;
                let t = (timeout(entry, e) * NS) as i64;
                if (idle - t).abs() < NS as i64 {
                    self.saw(if idle > t {
                        "ct: packet just after its entry's timeout"
                    } else {
                        "ct: packet just before its entry's timeout"
                    });
                }
            }
            if self.live(w, eni, &k, now) {
                self.note(format!("SG {dir} at {}: live entry", e.id));
                self.saw(if allowed {
                    "sg: live entry (rules allow too)"
                } else {
                    "sg: live entry where rules refuse"
                });
                return Some(CtAct::Refresh(k));
            }
            let id = e.id.clone();
            if self.ct.contains_key(&(id, k)) {
                self.saw("sg: expired entry not yet reclaimed");
            }
        }
        if let Some(q) = quoted_key(p) {
            if self.live(w, eni, &q, now) {
                self.note(format!("SG {dir} at {}: related ICMP error", e.id));
                self.saw(if allowed {
                    "sg: related ICMP error (rules allow too)"
                } else {
                    "sg: related ICMP error where rules refuse"
                });
                return Some(CtAct::Nothing);
            }
            self.saw("sg: ICMP error about no live flow");
        }
        if !allowed {
            self.note(format!("SG {dir} at {}: no rule allows", e.id));
            return None;
        }
        let act = match &p.l4 {
            L4::Tcp { .. } | L4::Udp { .. } => {
                if self.untracked(w, e, egress, p) {
                    self.saw("sg: untracked");
                    self.note(format!("SG {dir} at {}: rules allow, untracked", e.id));
                    CtAct::Nothing
                } else {
                    CtAct::Create(key.unwrap())
                }
            }
            L4::Icmp { .. } => match key {
                Some(k) => CtAct::Create(k),
                None => CtAct::Nothing,
            },
            L4::Other => CtAct::Create(key.unwrap()),
            L4::Unknown => CtAct::Nothing,
        };
        if let (CtAct::Create(_), L4::Icmp { ty, .. }) = (act, &p.l4) {
            if !matches!(ty, 8 | 13 | 15 | 17 | 128) {
                self.saw("sg: ICMP query reply without entry, creates one");
            }
        }
        if let CtAct::Create(_) = act {
            self.note(format!("SG {dir} at {}: rules allow, tracked", e.id));
        } else if matches!(p.l4, L4::Icmp { .. }) {
            self.note(format!("SG {dir} at {}: rules allow (no entry)", e.id));
        }
        Some(act)
    }

    /// 7.1 "Untracked, both directions", for a TCP/UDP packet at a hop of direction
    /// `egress` of ENI `e`, with the `/0` rules of the packet's family.
    fn untracked(&self, w: &World, e: &Eni, egress: bool, p: &Pkt) -> bool {
        let zero = |r: &&SgRule| match &r.peer {
            world::Peer::Cidr(c) => c.len == 0 && c.is_v6() == p.v6,
            world::Peer::Group(_) => false,
        };
        let hop: Vec<&SgRule> = w.rules(e, egress).into_iter().filter(zero).collect();
        let opp: Vec<&SgRule> = w.rules(e, !egress).into_iter().filter(zero).collect();
        let allows_port = |r: &SgRule, port: u16| match r.proto {
            SgProto::All => true,
            SgProto::Tcp(lo, hi) => p.proto == 6 && lo <= port && port <= hi,
            SgProto::Udp(lo, hi) => p.proto == 17 && lo <= port && port <= hi,
            _ => false,
        };
        let all_ports = |r: &SgRule| match r.proto {
            SgProto::All => true,
            SgProto::Tcp(0, 65535) => p.proto == 6,
            SgProto::Udp(0, 65535) => p.proto == 17,
            _ => false,
        };
        let (sport, dport) = (p.sport().unwrap(), p.dport().unwrap());
        let opener = hop.iter().any(|r| allows_port(r, dport)) && opp.iter().any(|r| all_ports(r));
        let answer = opp.iter().any(|r| allows_port(r, sport)) && hop.iter().any(|r| all_ports(r));
        opener || answer
    }
}
