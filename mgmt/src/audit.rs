//! `vpcgate audit`: what in the rules is risky, from the same checked config the
//! dataplane is compiled from. Each finding has a severity, the resource, the rule
//! and a one-line fix. Renders as a table, JSON or SARIF (for CI code scanning).

use std::fmt::Write;

use dataplane::addr::Family;
use serde::Serialize;
use serde_json::{json, Value};

use crate::validate::{Checked, NaclEntry, Peer, SgPorts, SgRule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier of the check (`open-admin-port`, `shadowed-nacl-entry`, ...).
    pub check: &'static str,
    pub severity: Severity,
    /// The resource: `sg-…`, `acl-…`, `eni-…`.
    pub resource: String,
    /// The rule or entry concerned, as text (`sgr-… tcp 22 from 0.0.0.0/0`), or empty.
    pub rule: String,
    pub message: String,
    pub fix: String,
}

/// Ports that must not be open to the internet, and what runs there.
const SENSITIVE_PORTS: &[(u16, &str, Severity)] = &[
    (22, "SSH", Severity::High),
    (3389, "RDP", Severity::High),
    (23, "Telnet", Severity::High),
    (3306, "MySQL", Severity::High),
    (5432, "PostgreSQL", Severity::High),
    (1433, "SQL Server", Severity::High),
    (1521, "Oracle", Severity::High),
    (27017, "MongoDB", Severity::High),
    (6379, "Redis", Severity::High),
    (9200, "Elasticsearch", Severity::High),
    (11211, "memcached", Severity::High),
    (5439, "Redshift", Severity::High),
    (2375, "Docker API", Severity::Critical),
    (2379, "etcd", Severity::High),
    (5900, "VNC", Severity::High),
    (445, "SMB", Severity::High),
];

fn everywhere(p: &Peer) -> bool {
    matches!(p, Peer::Cidr(c) if c.is_any())
}

fn sg_covers_port(r: &SgRule, port: u16) -> bool {
    match (r.proto, r.ports) {
        (None, _) => true,
        (Some(6), SgPorts::Range(a, b)) => (a..=b).contains(&port),
        _ => false,
    }
}

fn rule_text(r: &SgRule) -> String {
    format!("{} {}", r.id, r.text())
}

/// Every finding, most severe first.
pub fn audit(c: &Checked) -> Vec<Finding> {
    let mut out = Vec::new();
    let attached = |g: usize| c.enis.iter().filter(|e| e.groups.contains(&g)).count();
    let referenced = |id: &str| c.groups.iter().any(|g| g.rules.iter().any(|r| r.peer == Peer::Group(id.to_string())));

    for (gi, g) in c.groups.iter().enumerate() {
        let is_default = g.name == "default";
        for r in &g.rules {
            let f = |check, severity, message: String, fix: String| Finding {
                check,
                severity,
                resource: g.id.clone(),
                rule: rule_text(r),
                message,
                fix,
            };
            if !r.egress && everywhere(&r.peer) {
                if r.proto.is_none() || r.ports == SgPorts::Range(0, 65535) {
                    out.push(f(
                        "open-all-ports",
                        Severity::Critical,
                        format!("{} allows every port from the whole internet", g.id),
                        "allow only the ports the service needs, from the addresses that need them".into(),
                    ));
                } else if let Some((port, what, sev)) = SENSITIVE_PORTS.iter().find(|(p, _, _)| sg_covers_port(r, *p)) {
                    out.push(f(
                        "open-admin-port",
                        *sev,
                        format!("{what} (port {port}) is open to the whole internet"),
                        "restrict the source to your office or bastion range, or reach it through a bastion security group".into(),
                    ));
                }
            }
            if r.egress && everywhere(&r.peer) && r.proto.is_none() {
                out.push(f(
                    "unrestricted-egress",
                    Severity::Medium,
                    "all traffic may leave to any address: the data exfiltration risk".into(),
                    "allow only the destinations and ports the workload needs".into(),
                ));
            }
            if r.description.as_deref().is_none_or(str::is_empty) && !is_default {
                out.push(f(
                    "rule-without-description",
                    Severity::Low,
                    "the rule does not say why it exists".into(),
                    "add a Description naming the owner and purpose".into(),
                ));
            }
            if let Peer::Group(id) = &r.peer {
                if c.group_index(id).is_none() {
                    out.push(f(
                        "stale-group-reference",
                        Severity::Medium,
                        format!("the rule references {id}, which no longer exists: it matches nothing"),
                        "revoke the rule or point it at an existing group".into(),
                    ));
                }
            }
            if let Some(broader) = g
                .rules
                .iter()
                .find(|s| !std::ptr::eq(*s, r) && sg_rule_covers(s, r) && !(sg_rule_covers(r, s) && s.id > r.id))
            {
                out.push(f(
                    "covered-sg-rule",
                    Severity::Low,
                    format!("the rule adds nothing: {} already allows all of it", rule_text(broader)),
                    "revoke the narrower rule".into(),
                ));
            }
        }
        if is_default && !g.rules.is_empty() {
            out.push(Finding {
                check: "default-sg-has-rules",
                severity: Severity::Medium,
                resource: g.id.clone(),
                rule: String::new(),
                message: format!("the VPC's default security group carries {} rules", g.rules.len()),
                fix: "remove every rule from the default group and use purpose-made groups".into(),
            });
        }
        if is_default && attached(gi) > 0 {
            out.push(Finding {
                check: "default-sg-in-use",
                severity: Severity::Medium,
                resource: g.id.clone(),
                rule: String::new(),
                message: format!("{} network interface(s) use the VPC's default security group", attached(gi)),
                fix: "attach purpose-made groups instead of the default group".into(),
            });
        }
        if !is_default && attached(gi) == 0 && !referenced(&g.id) {
            out.push(Finding {
                check: "unused-sg",
                severity: Severity::Info,
                resource: g.id.clone(),
                rule: String::new(),
                message: format!("{} ({}) is attached to nothing and referenced by no rule", g.id, g.name),
                fix: "delete the group if it is not needed".into(),
            });
        }
        let q = c.config.appliance.quotas.rules_per_security_group;
        for egress in [false, true] {
            for fam in [Family::V4, Family::V6] {
                let n = g
                    .rules
                    .iter()
                    .filter(|r| r.egress == egress)
                    .filter(|r| match &r.peer {
                        Peer::Cidr(p) => p.family() == fam,
                        Peer::Group(_) => true,
                    })
                    .count() as u32;
                if q > 0 && n * 10 >= q * 8 {
                    out.push(Finding {
                        check: "quota-near-limit",
                        severity: Severity::Info,
                        resource: g.id.clone(),
                        rule: String::new(),
                        message: format!(
                            "{n} of {q} {} {} rules used",
                            if egress { "outbound" } else { "inbound" },
                            if fam == Family::V4 { "IPv4" } else { "IPv6" }
                        ),
                        fix: "consolidate rules, or raise Appliance.Quotas.RulesPerSecurityGroup".into(),
                    });
                }
            }
        }
    }

    for n in &c.nacls {
        for e in &n.entries {
            let earlier: Vec<&NaclEntry> =
                n.entries.iter().filter(|x| x.egress == e.egress && x.rule_number < e.rule_number).collect();
            if nacl_entry_shadowed(e, &earlier) {
                out.push(Finding {
                    check: "shadowed-nacl-entry",
                    severity: Severity::Medium,
                    resource: n.id.clone(),
                    rule: e.text(),
                    message: format!(
                        "{} entry {} can never match: earlier entries take all of its traffic",
                        if e.egress { "egress" } else { "ingress" },
                        e.rule_number
                    ),
                    fix: "delete it, or renumber it before the entries that shadow it".into(),
                });
            }
        }
    }

    for e in &c.enis {
        let (subnet, vpc) = (&c.subnets[e.subnet].id, &c.vpcs[e.vpc].id);
        if !c
            .config
            .flow_logs
            .iter()
            .any(|f| f.resource_id == e.id || &f.resource_id == subnet || &f.resource_id == vpc)
        {
            out.push(Finding {
                check: "eni-without-flow-log",
                severity: Severity::Low,
                resource: e.id.clone(),
                rule: String::new(),
                message: "no flow log covers this network interface: its traffic leaves no record".into(),
                fix: format!("create a flow log for {}, its subnet or its VPC", e.id),
            });
        }
        let q = c.config.appliance.quotas.security_groups_per_network_interface;
        if q > 0 && e.groups.len() as u32 * 10 >= q * 8 {
            out.push(Finding {
                check: "quota-near-limit",
                severity: Severity::Info,
                resource: e.id.clone(),
                rule: String::new(),
                message: format!("{} of {q} security groups per network interface used", e.groups.len()),
                fix: "merge groups, or raise Appliance.Quotas.SecurityGroupsPerNetworkInterface".into(),
            });
        }
    }
    out.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| a.resource.cmp(&b.resource)).then_with(|| a.rule.cmp(&b.rule))
    });
    out
}

/// Does security-group rule `s` allow everything `r` allows (same direction)?
/// Group references are only covered by the same reference (membership changes).
pub fn sg_rule_covers(s: &SgRule, r: &SgRule) -> bool {
    if s.egress != r.egress {
        return false;
    }
    let proto_ok = match (s.proto, r.proto) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    if !proto_ok {
        return false;
    }
    let keys = |p: Option<u8>, ports: SgPorts| if p.is_none() { (0, 65535) } else { crate::compile::sg_keys(ports) };
    let (s_lo, s_hi) = keys(s.proto, s.ports);
    let (r_lo, r_hi) = keys(r.proto, r.ports);
    if !(s_lo <= r_lo && r_hi <= s_hi) {
        return false;
    }
    match (&s.peer, &r.peer) {
        (Peer::Cidr(a), Peer::Cidr(b)) => a.family() == b.family() && a.len <= b.len && a.contains(b.addr),
        (Peer::Group(a), Peer::Group(b)) => a == b,
        _ => false,
    }
}

/// A NACL entry as a box: protocol set, key range, address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NaclBox {
    /// `None` = every protocol.
    proto: Option<u8>,
    keys: (u16, u16),
    addrs: (u128, u128),
}

fn nacl_box(e: &NaclEntry) -> NaclBox {
    NaclBox { proto: e.proto, keys: crate::compile::nacl_keys(e.ports), addrs: e.cidr.range() }
}

/// Is every packet `e` matches already matched by one of `earlier` (same direction,
/// lower rule numbers)? Exact: subtracts the earlier boxes from `e`'s box.
pub fn nacl_entry_shadowed(e: &NaclEntry, earlier: &[&NaclEntry]) -> bool {
    let family = e.cidr.family();
    // Pieces of e not yet covered; protocol `None` pieces are split per protocol
    // only when an earlier entry names one (then the remaining protocols stay `None`,
    // tracked with an exclusion list).
    let mut pieces: Vec<(NaclBox, Vec<u8>)> = vec![(nacl_box(e), Vec::new())];
    for x in earlier.iter().filter(|x| x.cidr.family() == family) {
        let b = nacl_box(x);
        let mut next = Vec::new();
        for (p, excluded) in pieces {
            next.extend(subtract(p, &excluded, b));
        }
        pieces = next;
        if pieces.is_empty() {
            return true;
        }
    }
    pieces.is_empty()
}

/// `p` (a protocol set `p.proto`, minus `excluded` when `None`) minus `b`.
fn subtract(p: NaclBox, excluded: &[u8], b: NaclBox) -> Vec<(NaclBox, Vec<u8>)> {
    let overlap = |a: (u128, u128), c: (u128, u128)| a.0.max(c.0) <= a.1.min(c.1);
    let k = |r: (u16, u16)| (r.0 as u128, r.1 as u128);
    // Protocol overlap.
    let proto_overlap = match (p.proto, b.proto) {
        (_, None) => true,
        (Some(a), Some(c)) => a == c,
        (None, Some(c)) => !excluded.contains(&c),
    };
    if !proto_overlap || !overlap(k(p.keys), k(b.keys)) || !overlap(p.addrs, b.addrs) {
        return vec![(p, excluded.to_vec())];
    }
    let mut out = Vec::new();
    // The part of p outside b's protocol: p(None) minus protocol c stays None with c excluded.
    let inner_proto = if let (None, Some(c)) = (p.proto, b.proto) {
        let mut ex = excluded.to_vec();
        ex.push(c);
        out.push((p, ex));
        Some(c)
    } else {
        p.proto
    };
    let inner_excluded: Vec<u8> = if inner_proto.is_some() { Vec::new() } else { excluded.to_vec() };
    // Within the overlapping protocol: split keys, then addresses.
    let mut rest = NaclBox { proto: inner_proto, ..p };
    if rest.keys.0 < b.keys.0 {
        out.push((NaclBox { keys: (rest.keys.0, b.keys.0 - 1), ..rest }, inner_excluded.clone()));
        rest.keys.0 = b.keys.0;
    }
    if rest.keys.1 > b.keys.1 {
        out.push((NaclBox { keys: (b.keys.1 + 1, rest.keys.1), ..rest }, inner_excluded.clone()));
        rest.keys.1 = b.keys.1;
    }
    if rest.addrs.0 < b.addrs.0 {
        out.push((NaclBox { addrs: (rest.addrs.0, b.addrs.0 - 1), ..rest }, inner_excluded.clone()));
        rest.addrs.0 = b.addrs.0;
    }
    if rest.addrs.1 > b.addrs.1 {
        out.push((NaclBox { addrs: (b.addrs.1 + 1, rest.addrs.1), ..rest }, inner_excluded.clone()));
    }
    out
}

pub fn render_table(findings: &[Finding]) -> String {
    let mut s = String::new();
    if findings.is_empty() {
        return "no findings\n".into();
    }
    let _ = writeln!(s, "{:<9} {:<26} {:<24} FINDING / FIX", "SEVERITY", "CHECK", "RESOURCE");
    for f in findings {
        let _ = writeln!(s, "{:<9} {:<26} {:<24} {}", f.severity.name(), f.check, f.resource, f.message);
        if !f.rule.is_empty() {
            let _ = writeln!(s, "{:<61} rule: {}", "", f.rule);
        }
        let _ = writeln!(s, "{:<61} fix:  {}", "", f.fix);
    }
    let _ = writeln!(s, "\n{} finding(s)", findings.len());
    s
}

pub fn render_json(findings: &[Finding]) -> Value {
    json!({ "Findings": findings })
}

/// SARIF 2.1.0, as code-scanning tools (GitHub, GitLab) read it.
pub fn render_sarif(findings: &[Finding], source: &str) -> Value {
    let level = |s: Severity| match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    };
    let mut checks: Vec<&'static str> = findings.iter().map(|f| f.check).collect();
    checks.sort_unstable();
    checks.dedup();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "vpcgate audit", "informationUri": "https://github.com/vpcgate/vpcgate",
                                 "rules": checks.iter().map(|c| json!({"id": c, "name": c})).collect::<Vec<_>>()}},
            "results": findings.iter().map(|f| json!({
                "ruleId": f.check,
                "level": level(f.severity),
                "message": {"text": format!("{}: {} Fix: {}", f.resource, f.message, f.fix)},
                "properties": {"severity": f.severity.name(), "resource": f.resource, "rule": f.rule},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": source}},
                               "logicalLocations": [{"name": f.resource, "kind": "resource"}]}],
            })).collect::<Vec<_>>(),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::NaclPorts;
    use dataplane::addr::{Ip, Prefix};
    use rand::{Rng, SeedableRng};

    const PROTOS: [Option<u8>; 4] = [Some(6), Some(17), Some(47), None];

    fn random_prefix(rng: &mut impl Rng) -> Prefix {
        if rng.gen_bool(0.15) {
            return Prefix::any(Family::V4);
        }
        let len = rng.gen_range(28..=32u8);
        Prefix::new(Ip::v4(0x0a00_0000 | rng.gen_range(0..16u32)), len)
    }

    fn random_range(rng: &mut impl Rng) -> (u16, u16) {
        if rng.gen_bool(0.2) {
            return (0, 65535);
        }
        let a = rng.gen_range(0..=16u16);
        (a, rng.gen_range(a..=16))
    }

    /// Sample points that represent every region the random rules can cut.
    fn universe() -> Vec<(u8, u16, u128)> {
        let mut u = Vec::new();
        for proto in [6u8, 17, 47, 50] {
            for key in (0..=17u16).chain([1000, 65535]) {
                for addr in (0..16u128).map(|a| 0x0a00_0000 | a).chain([0x0b00_0000]) {
                    u.push((proto, key, addr));
                }
            }
        }
        u
    }

    fn nacl_matches(e: &NaclEntry, (proto, key, addr): (u8, u16, u128)) -> bool {
        let (lo, hi) = crate::compile::nacl_keys(e.ports);
        e.proto.is_none_or(|p| p == proto) && (lo..=hi).contains(&key) && e.cidr.contains(Ip::v4(addr as u32))
    }

    #[test]
    fn shadowed_nacl_entries_agree_with_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let u = universe();
        for _ in 0..300 {
            let n = rng.gen_range(1..8);
            let entries: Vec<NaclEntry> = (0..n)
                .map(|i| {
                    let proto = PROTOS[rng.gen_range(0..4)];
                    let ports = match proto {
                        Some(6) | Some(17) => {
                            let (a, b) = random_range(&mut rng);
                            NaclPorts::Range(a, b)
                        }
                        _ => NaclPorts::All,
                    };
                    NaclEntry {
                        rule_number: i + 1,
                        egress: false,
                        allow: rng.gen(),
                        proto,
                        ports,
                        cidr: random_prefix(&mut rng),
                    }
                })
                .collect();
            for e in &entries {
                let earlier: Vec<&NaclEntry> = entries.iter().filter(|x| x.rule_number < e.rule_number).collect();
                let brute = !u.iter().any(|&pt| nacl_matches(e, pt) && !earlier.iter().any(|x| nacl_matches(x, pt)));
                assert_eq!(nacl_entry_shadowed(e, &earlier), brute, "{e:?} after {earlier:?}");
            }
        }
    }

    fn sg_matches(r: &SgRule, (proto, key, addr): (u8, u16, u128)) -> bool {
        let (lo, hi) = if r.proto.is_none() { (0, 65535) } else { crate::compile::sg_keys(r.ports) };
        let Peer::Cidr(c) = &r.peer else { return false };
        r.proto.is_none_or(|p| p == proto) && (lo..=hi).contains(&key) && c.contains(Ip::v4(addr as u32))
    }

    #[test]
    fn covered_sg_rules_agree_with_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let u = universe();
        for _ in 0..2000 {
            let mut rule = || {
                let proto = PROTOS[rng.gen_range(0..4)];
                let ports = match proto {
                    Some(6) | Some(17) => {
                        let (a, b) = random_range(&mut rng);
                        SgPorts::Range(a, b)
                    }
                    _ => SgPorts::All,
                };
                SgRule {
                    id: "sgr-1".into(),
                    egress: false,
                    proto,
                    ports,
                    peer: Peer::Cidr(random_prefix(&mut rng)),
                    description: None,
                }
            };
            let (s, r) = (rule(), rule());
            let brute = u.iter().all(|&pt| !sg_matches(&r, pt) || sg_matches(&s, pt));
            assert_eq!(sg_rule_covers(&s, &r), brute, "{s:?} covers {r:?}?");
        }
    }
}
