//! `vpcgate trace`: "would this packet get through, and why?" The packet is built
//! from its description (or taken from a capture) and judged by the pipeline's own
//! `decide` — the code the workers run — which reports every hop with the rule that
//! decided it. The reachability form judges a whole connection: the request, then
//! (with the request's conntrack entries in place) the reply.

use std::net::IpAddr;

use dataplane::addr::Mac;
use dataplane::explain::{SgDecision, Step, Tracking};
use dataplane::pipeline::{Frame, Pipeline, PipelineConfig, Plan, Verdict};
use dataplane::tables::{PortId, Tables};
use dataplane::testkit::{self, Flags, Host};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{invalid, Ec2Error, Result};

/// A packet to trace, as the CLI and the API `Trace` action take it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TraceRequest {
    /// The ENI the packet comes from (its port and MAC are used).
    #[serde(default)]
    pub eni: Option<String>,
    /// Or the port it arrives on (an uplink, for traffic from outside).
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub dst: Option<String>,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or a number.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub sport: Option<u16>,
    #[serde(default)]
    pub dport: Option<u16>,
    #[serde(default)]
    pub icmp_type: Option<u8>,
    #[serde(default)]
    pub icmp_code: Option<u8>,
    /// e.g. `SYN`, `SYN,ACK`, `ACK`, `FIN,ACK`, `RST` (default SYN).
    #[serde(default)]
    pub tcp_flags: Option<String>,
    /// Reachability: from this ENI to that ENI (or address), request and reply.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// A whole frame (hex), e.g. taken from a capture; arrives on `port`.
    #[serde(default)]
    pub frame: Option<String>,
}

fn hex_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("Frame must be an even number of hex digits"));
    }
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect())
}

pub fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One judged packet: its verdict and every step.
#[derive(Clone, Debug, Serialize)]
pub struct Leg {
    pub what: String,
    pub verdict: String,
    pub reason: Option<String>,
    pub egress_port: Option<String>,
    pub steps: Vec<Value>,
    #[serde(skip)]
    pub lines: Vec<String>,
}

fn parse_flags(s: &str) -> Result<Flags> {
    let mut f = Flags::default();
    for part in s.split([',', '|', '+', ' ']).filter(|p| !p.is_empty()) {
        match part.to_ascii_uppercase().as_str() {
            "SYN" => f.syn = true,
            "ACK" => f.ack = true,
            "FIN" => f.fin = true,
            "RST" => f.rst = true,
            "PSH" => f.psh = true,
            other => return Err(invalid(format!("Unknown TCP flag {other} (use SYN, ACK, FIN, RST, PSH)"))),
        }
    }
    Ok(f)
}

fn ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse().map_err(|_| invalid(format!("{what} {s:?} is not an IP address")))
}

/// Where a traced packet enters: the port and the source MAC it carries.
fn entry_point(t: &Tables, req: &TraceRequest) -> Result<(PortId, Mac, Option<IpAddr>)> {
    if let Some(eni) = &req.eni {
        let e = t.eni_by_name(eni).ok_or_else(|| {
            Ec2Error::new(
                "InvalidNetworkInterfaceID.NotFound",
                format!("The networkInterface ID '{eni}' does not exist"),
            )
        })?;
        let port = e.port.ok_or_else(|| invalid(format!("{eni} is behind no port of this appliance")))?;
        let primary = e.ipv4.first().map(|&a| IpAddr::from(std::net::Ipv4Addr::from(a)));
        return Ok((port, e.mac, primary));
    }
    if let Some(name) = &req.port {
        let p = t.port_by_name(name).ok_or_else(|| invalid(format!("No port named {name}")))?;
        let port = &t.ports[p as usize];
        if !port.uplink {
            return Err(invalid(format!("Port {name} serves ENIs: give --eni to say which one sends")));
        }
        return Ok((p, port.gateway_mac, None));
    }
    Err(Ec2Error::new("MissingParameter", "Say where the packet comes from: --eni or --port"))
}

/// Builds the frame a request describes (or takes the one it carries).
pub fn build_frame(t: &Tables, req: &TraceRequest) -> Result<(PortId, Vec<u8>)> {
    if let Some(hex) = &req.frame {
        let name = req
            .port
            .as_deref()
            .ok_or_else(|| Ec2Error::new("MissingParameter", "A frame needs the Port it arrives on"))?;
        let port = t.port_by_name(name).ok_or_else(|| invalid(format!("No port named {name}")))?;
        return Ok((port, hex_decode(hex)?));
    }
    let (port, mac, default_src) = entry_point(t, req)?;
    let src = match &req.src {
        Some(s) => ip(s, "--src")?,
        None => {
            default_src.ok_or_else(|| Ec2Error::new("MissingParameter", "--src is needed for traffic from outside"))?
        }
    };
    let dst = ip(req.dst.as_deref().ok_or_else(|| Ec2Error::new("MissingParameter", "--dst is needed"))?, "--dst")?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(invalid("--src and --dst must be of the same IP family"));
    }
    let from = Host { mac, ip: src };
    let proto = crate::validate::parse_protocol(req.protocol.as_deref().unwrap_or("tcp"))?;
    let sport = req.sport.unwrap_or(49152);
    let frame = match proto {
        Some(6) => {
            let flags = parse_flags(req.tcp_flags.as_deref().unwrap_or("SYN"))?;
            let dport = req.dport.ok_or_else(|| Ec2Error::new("MissingParameter", "--dport is needed for tcp"))?;
            testkit::tcp(&from, dst, t.router_mac, sport, dport, flags, 1, 1, &[])
        }
        Some(17) => {
            let dport = req.dport.ok_or_else(|| Ec2Error::new("MissingParameter", "--dport is needed for udp"))?;
            testkit::udp(&from, dst, t.router_mac, sport, dport, b"trace")
        }
        Some(1) | Some(58) => {
            let ty = req.icmp_type.unwrap_or(if src.is_ipv4() { 8 } else { 128 });
            testkit::icmp(&from, dst, t.router_mac, ty, req.icmp_code.unwrap_or(0), [0, 1, 0, 1], b"trace")
        }
        Some(p) => testkit::other(&from, dst, t.router_mac, p, b"trace"),
        None => return Err(invalid("Trace needs one protocol, not -1")),
    };
    Ok((port, frame))
}

fn step_json(t: &Tables, s: &Step) -> Value {
    let mut v = json!({ "Text": s.describe(t) });
    match s {
        Step::Sg { hop, eni, decision } => {
            v["Hop"] = json!(hop.name());
            v["NetworkInterfaceId"] = json!(t.eni(*eni).map(|e| e.id.clone()));
            match decision {
                SgDecision::Rule { rule, tracking } => {
                    if let Some(info) = t.eni(*eni).and_then(|e| e.sg(hop.direction()).rules.get(*rule as usize)) {
                        v["GroupId"] = json!(info.group_id);
                        v["SecurityGroupRuleId"] = json!(info.rule_id);
                        v["Rule"] = json!(info.text);
                    }
                    v["Decision"] = json!("allow");
                    v["Tracking"] = json!(match tracking {
                        Tracking::New => "tracked",
                        Tracking::Untracked(_) => "untracked",
                        Tracking::NotTracked => "not-tracked",
                    });
                }
                SgDecision::Tracked(view) | SgDecision::Related(view) => {
                    v["Decision"] =
                        json!(if matches!(decision, SgDecision::Tracked(_)) { "conntrack" } else { "related" });
                    v["Conntrack"] = json!({"State": view.phase.name(), "TimeoutSeconds": view.timeout});
                }
                SgDecision::NoRule => v["Decision"] = json!("deny"),
            }
        }
        Step::Nacl { hop, nacl, matched, .. } => {
            v["Hop"] = json!(hop.name());
            v["NetworkAclId"] = json!(t.nacls[*nacl as usize].id);
            let table = if hop.direction() == dataplane::policy::Direction::Egress {
                &t.nacls[*nacl as usize].egress
            } else {
                &t.nacls[*nacl as usize].ingress
            };
            v["RuleNumber"] = json!(matched.rule.map(|r| table.rules[r as usize].rule_number));
            v["Decision"] = json!(if matched.allow { "allow" } else { "deny" });
        }
        _ => {}
    }
    v
}

/// Judges one frame against `pipeline`'s current state (changes nothing).
/// The pipeline first catches up to `now` (conntrack timers, accounting windows), as a
/// worker does before every batch: judged without that, an entry the worker would
/// have expired still counts, e.g. against a full table.
pub fn judge(t: &Tables, pipeline: &mut Pipeline, port: PortId, frame: &[u8], now: u64, what: String) -> Leg {
    pipeline.sync(t, now);
    let mut steps = Vec::new();
    let mut plan = Plan::default();
    pipeline.decide(t, frame, port, now, &mut steps, &mut plan);
    steps.push(Step::Verdict(plan.verdict));
    let egress_port = match plan.verdict {
        Verdict::Forward(p) => Some(t.ports[p as usize].name.clone()),
        _ => None,
    };
    Leg {
        what,
        verdict: plan.verdict.name().into(),
        reason: plan.verdict.reason().map(str::to_string),
        egress_port,
        steps: steps.iter().map(|s| step_json(t, s)).collect(),
        lines: steps.iter().map(|s| s.describe(t)).collect(),
    }
}

/// Traces a described packet against a config (fresh conntrack), or, for the
/// reachability form, a request and its reply.
pub fn trace_offline(t: &Tables, req: &TraceRequest, now: u64) -> Result<Vec<Leg>> {
    // A frame or two: nothing worth caching (the default cache is 2 MiB to zero).
    let mut pipeline = Pipeline::new(PipelineConfig {
        conntrack_entries: 64,
        fragment_entries: 16,
        flow_entries: 16,
        flow_cache_entries: 0,
    });
    match (&req.from, &req.to) {
        (Some(from), Some(to)) => reachability(t, &mut pipeline, req, from, to, now),
        (None, None) => {
            let (port, frame) = build_frame(t, req)?;
            Ok(vec![judge(t, &mut pipeline, port, &frame, now, "packet".into())])
        }
        _ => Err(Ec2Error::new("MissingParameter", "The reachability form needs both --from and --to")),
    }
}

/// Like AWS Reachability Analyzer: can `from` open a connection to `to`, and does
/// the reply come back?
pub fn reachability(
    t: &Tables,
    pipeline: &mut Pipeline,
    req: &TraceRequest,
    from: &str,
    to: &str,
    now: u64,
) -> Result<Vec<Leg>> {
    let dst_ip = match t.eni_by_name(to) {
        Some(e) => e
            .ipv4
            .first()
            .map(|&a| std::net::Ipv4Addr::from(a).to_string())
            .ok_or_else(|| invalid(format!("{to} has no IPv4 address")))?,
        None => ip(to, "--to")?.to_string(),
    };
    let forward_req =
        TraceRequest { eni: Some(from.to_string()), dst: Some(dst_ip), from: None, to: None, ..req.clone() };
    let (port, mut frame) = build_frame(t, &forward_req)?;
    let request = judge(t, pipeline, port, &frame, now, format!("request {from} -> {to}"));
    let mut legs = vec![request];
    if legs[0].verdict != "forward" {
        return Ok(legs);
    }
    // Let the request through for real, so the reply finds the conntrack entries.
    let len = frame.len();
    frame.resize(len.max(2048), 0);
    let out = pipeline.process_frame(t, &mut Frame { buf: &mut frame, len, port, time: now }, &mut ());
    let Verdict::Forward(reply_port) = out.verdict else { return Ok(legs) };
    let original = dataplane::wire::parse(&frame[out.head..out.head + out.len]).map_err(|m| invalid(m.name()))?;
    let dataplane::wire::Kind::Ip(ip_pkt) = original.kind else { return Ok(legs) };
    let (reply_from_mac, proto) = (original.dst_mac, ip_pkt.proto);
    let replier = Host { mac: reply_from_mac, ip: ip_pkt.dst_ip().to_std() };
    let back = ip_pkt.src_ip().to_std();
    let reply = match ip_pkt.l4 {
        dataplane::wire::L4::Tcp { sport, dport, .. } => {
            testkit::tcp(&replier, back, t.router_mac, dport, sport, Flags::SYN_ACK, 1, 2, &[])
        }
        dataplane::wire::L4::Udp { sport, dport } => testkit::udp(&replier, back, t.router_mac, dport, sport, b"reply"),
        dataplane::wire::L4::Icmp(_) => testkit::echo(&replier, back, t.router_mac, 1, 1, true),
        _ => testkit::other(&replier, back, t.router_mac, proto, b"reply"),
    };
    // A reply from outside arrives from the upstream router.
    let reply = if t.ports[reply_port as usize].uplink {
        let mut r = reply;
        r[6..12].copy_from_slice(&t.ports[reply_port as usize].gateway_mac.0);
        r
    } else {
        reply
    };
    legs.push(judge(t, pipeline, reply_port, &reply, now + 1_000_000, format!("reply {to} -> {from}")));
    Ok(legs)
}

pub fn render_text(legs: &[Leg]) -> String {
    let mut s = String::new();
    for leg in legs {
        s.push_str(&format!("{}:\n", leg.what));
        for l in &leg.lines {
            s.push_str(&format!("  {l}\n"));
        }
    }
    if legs.len() == 2 || (legs.len() == 1 && legs[0].what.starts_with("request")) {
        let ok = legs.len() == 2 && legs.iter().all(|l| l.verdict == "forward");
        s.push_str(if ok { "reachable: the connection opens and its replies return\n" } else { "NOT reachable\n" });
    }
    s
}

pub fn render_json(legs: &[Leg]) -> Value {
    json!({ "Legs": legs, "Reachable": legs.iter().all(|l| l.verdict == "forward") })
}
