//! Explanations, in the spirit of OVS's `ofproto/trace`: the pipeline reports every
//! decision it makes, with the rule or conntrack entry behind it, to an [`Explain`]
//! sink. The hot path passes `()`, whose methods compile to nothing.

use crate::conntrack::{CtView, Way};
use crate::forward::{Dest, Source};
use crate::fragment::Remembered;
use crate::pipeline::{Hop, Verdict};
use crate::policy::nacl::NaclMatch;
use crate::policy::sg::Untracked;
use crate::tables::{EniId, Tables};
use crate::wire::{Kind, Packet, L4};

/// Where explanations go. Steps are built lazily, so the hot path (`()`) never even
/// computes them.
pub trait Explain {
    /// Whether steps are recorded: an explained frame takes the full path, never the
    /// flow cache, so every hop is in the explanation.
    const RECORDS: bool;
    fn step(&mut self, step: impl FnOnce() -> Step);
}

impl Explain for () {
    const RECORDS: bool = false;
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> Step) {}
}

impl Explain for Vec<Step> {
    const RECORDS: bool = true;
    fn step(&mut self, step: impl FnOnce() -> Step) {
        self.push(step());
    }
}

/// How a tracked-or-not decision went for a packet allowed by a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// A conntrack entry will be created (or an expired one restarted).
    New,
    /// Untracked flow (section 2.1): no entry, every packet is judged by the rules.
    Untracked(Untracked),
    /// ICMP that is neither a query nor related: judged by rules, nothing to track.
    NotTracked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgDecision {
    /// The packet belongs to a tracked flow: allowed whatever the rules say now.
    Tracked(CtView),
    /// An ICMP error about a tracked flow: allowed as related traffic.
    Related(CtView),
    /// Allowed by rule `rule` (index into the ENI's rules for that direction).
    Rule { rule: u32, tracking: Tracking },
    /// No rule of any of the ENI's groups allows it.
    NoRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Parsed(Packet),
    Source(Source),
    SourceCheck { eni: EniId, enforced: bool, owned: bool },
    Neighbor { answered: bool },
    Route(Dest),
    FragmentFollows { remembered: Option<Remembered> },
    Sg { hop: Hop, eni: EniId, decision: SgDecision },
    Nacl { hop: Hop, subnet: u16, nacl: u16, matched: NaclMatch },
    ConntrackFull,
    Verdict(Verdict),
}

fn eni_name(t: &Tables, e: EniId) -> &str {
    t.eni(e).map_or("(removed ENI)", |e| e.id.as_str())
}

fn ct_text(v: &CtView) -> String {
    let endpoint = |bits: u128, port: u16| {
        let ip = crate::addr::Ip { family: v.key.family(), bits };
        if v.key.proto() == crate::wire::PROTO_TCP || v.key.proto() == crate::wire::PROTO_UDP {
            format!("{ip}:{port}")
        } else {
            ip.to_string()
        }
    };
    let opener = match v.state.opened {
        Way::LoToHi => endpoint(v.key.lo, v.key.lo_port()),
        Way::HiToLo => endpoint(v.key.hi, v.key.hi_port()),
    };
    format!("{}, timeout {} s, opened by {}", v.phase.name(), v.timeout, opener)
}

impl Step {
    /// One line for people, naming resources as the config does.
    pub fn describe(&self, t: &Tables) -> String {
        match *self {
            Step::Parsed(p) => match p.kind {
                Kind::Arp(a) => format!(
                    "parse: ARP op {} {} asks for {}",
                    a.op,
                    std::net::Ipv4Addr::from(a.sender_ip),
                    std::net::Ipv4Addr::from(a.target_ip)
                ),
                Kind::OtherEthertype(et) => format!("parse: ethertype 0x{et:04x}"),
                Kind::Ip(ip) => {
                    let l4 = match ip.l4 {
                        L4::Tcp { sport, dport, flags } => format!("tcp {sport} -> {dport} flags 0x{flags:02x}"),
                        L4::Udp { sport, dport } => format!("udp {sport} -> {dport}"),
                        L4::Icmp(i) => format!("icmp type {} code {}", i.ty, i.code),
                        L4::Other => format!("protocol {}", ip.proto),
                        L4::NotFirstFragment => format!("protocol {} (later fragment)", ip.proto),
                    };
                    format!("parse: {} -> {} {}", ip.src_ip(), ip.dst_ip(), l4)
                }
            },
            Step::Source(Source::Eni(e)) => {
                format!("source: {} (by port and source MAC)", eni_name(t, e))
            }
            Step::Source(Source::Uplink(p)) => {
                format!("source: outside the VPC, uplink port {}", t.ports[p as usize].name)
            }
            Step::SourceCheck { eni, enforced, owned } => format!(
                "source/dest check on {}: {}",
                eni_name(t, eni),
                match (enforced, owned) {
                    (false, _) => "disabled",
                    (true, true) => "source address is the ENI's",
                    (true, false) => "FAILED, source address is not the ENI's",
                }
            ),
            Step::Neighbor { answered } => {
                format!("neighbour: {}", if answered { "answered with the router MAC" } else { "not answered" })
            }
            Step::Route(Dest::Eni(e)) => format!("route: to {}", eni_name(t, e)),
            Step::Route(Dest::Uplink(p)) => format!("route: outside the VPC, via uplink {}", t.ports[p as usize].name),
            Step::FragmentFollows { remembered } => match remembered {
                None => "fragment: later fragment with no first fragment seen (orphan)".into(),
                Some(r) => format!("fragment: later fragment, first fragment's verdict {r:?}"),
            },
            Step::Sg { hop, eni, decision } => {
                let e = t.eni(eni);
                let rules = e.map(|e| &e.sg(hop.direction()).rules);
                let what = match decision {
                    SgDecision::Tracked(v) => {
                        format!("tracked connection, allowed ({})", ct_text(&v))
                    }
                    SgDecision::Related(v) => {
                        format!("ICMP error about a tracked connection, allowed ({})", ct_text(&v))
                    }
                    SgDecision::NoRule => "no rule of the ENI's groups allows it".into(),
                    SgDecision::Rule { rule, tracking } => {
                        let r = rules.and_then(|r| r.get(rule as usize));
                        let rule_text =
                            r.map_or(format!("rule #{rule}"), |r| format!("{} {} ({})", r.group_id, r.rule_id, r.text));
                        let track = match tracking {
                            Tracking::New => "tracked: new conntrack entry".to_string(),
                            Tracking::Untracked(Untracked::Opener) => {
                                "untracked: open to all addresses, and the other direction allows all ports".into()
                            }
                            Tracking::Untracked(Untracked::Answer) => {
                                "untracked: answers a flow open to all addresses, this direction allows all ports"
                                    .into()
                            }
                            Tracking::NotTracked => "not tracked (ICMP that is neither a query nor related)".into(),
                        };
                        format!("allowed by {rule_text}; {track}")
                    }
                };
                format!("{} at {}: {}", hop.name(), eni_name(t, eni), what)
            }
            Step::Nacl { hop, subnet, nacl, matched } => {
                let n = &t.nacls[nacl as usize];
                let table = if hop.direction() == crate::policy::Direction::Egress { &n.egress } else { &n.ingress };
                let rule = match matched.rule {
                    Some(i) => table.rules[i as usize].text.clone(),
                    None => "* deny (no entry matched)".into(),
                };
                format!(
                    "{} {} of {}: {} by {}",
                    hop.name(),
                    n.id,
                    t.subnets[subnet as usize].id,
                    if matched.allow { "allowed" } else { "DENIED" },
                    rule
                )
            }
            Step::ConntrackFull => "conntrack: no room for a new entry (conntrack_allowance_exceeded)".into(),
            Step::Verdict(v) => match v {
                Verdict::Forward(p) => {
                    format!("verdict: forward to port {}", t.ports[p as usize].name)
                }
                Verdict::Reply => "verdict: answered by the appliance".into(),
                Verdict::Reject(h) => format!("verdict: reject ({})", h.name()),
                Verdict::Drop(r) => match r.detail() {
                    Some(d) => format!("verdict: drop ({}: {d})", r.name()),
                    None => format!("verdict: drop ({})", r.name()),
                },
            },
        }
    }
}
