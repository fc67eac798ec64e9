//! Differential test: the real pipeline (through the test harness, with its config
//! validated, compiled and swapped as the daemon does) against the independent oracle
//! of `tests/oracle/`, on random configs and random traffic with rule changes and a
//! controlled clock. Zero disagreements are allowed on the verdict, the reject hop or
//! drop reason, the egress port and the destination MAC of forwarded frames.
//!
//! Size: `VPCGATE_DIFF_CONFIGS` configs (default 60) x `VPCGATE_DIFF_FRAMES` frames
//! (default 500); seed `VPCGATE_DIFF_SEED` (default fixed); `VPCGATE_DIFF_ONLY=N` runs
//! config N alone. Full run:
//! `VPCGATE_DIFF_CONFIGS=1000 VPCGATE_DIFF_FRAMES=1000 cargo test --release -p mgmt --test differential`

#[path = "support/capture.rs"]
mod capture;
#[path = "support/diffgen.rs"]
mod diffgen;
#[path = "support/harness.rs"]
mod harness;
mod oracle;

use std::collections::BTreeMap;
use std::time::Instant;

use diffgen::{scenario, Event};
use harness::Harness;
use oracle::{Oracle, Verdict};

const T0: u64 = 1_795_305_600_000_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number"))).unwrap_or(default)
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(m: Option<[u8; 6]>) -> String {
    match m {
        Some(m) => m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
        None => "-".into(),
    }
}

/// The harness with the pipeline sized as `vpcgate replay` (and the daemon) size it:
/// the core's conntrack table holds `Appliance.Conntrack.MaxEntries` entries.
/// (`Harness::new` keeps the 262,144-entry default whatever the config says.)
fn real_system(config: mgmt::model::Config) -> Harness {
    let pc = dataplane::pipeline::PipelineConfig {
        conntrack_entries: config.appliance.conntrack.max_entries,
        ..Default::default()
    };
    Harness::with_pipeline(config, pc)
}

/// Catches a panic of the harness (a rejected config) and says which scenario.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(x) => x,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: {msg}");
        }
    }
}

/// Runs config `index`; returns the number of frames, or a report of the first
/// disagreement.
fn run_one(
    seed: u64,
    index: u64,
    frames: usize,
    tally: &mut BTreeMap<String, u64>,
    seen: &mut BTreeMap<&'static str, u64>,
) -> Result<usize, String> {
    let sc = scenario(seed, index, frames);
    let ctx = format!("seed {seed} config {index}");
    let mut h = guarded(&format!("{ctx}: generated config rejected"), || real_system(sc.config.clone()));
    let mut o = Oracle::new(&sc.config);
    let mut n = 0usize;
    // `conntrack_allowance_available` per ENI after every frame (section 7), unless
    // VPCGATE_DIFF_CT=0.
    let ct_check = std::env::var("VPCGATE_DIFF_CT").map_or(true, |v| v != "0");
    let mut log = std::env::var("VPCGATE_DIFF_LOG").ok().map(|p| std::fs::File::create(p).unwrap());
    for (k, ev) in sc.events.iter().enumerate() {
        match ev {
            Event::Advance(ns) => h.now += ns,
            Event::Update { config, what } => {
                *seen.entry("(config changes applied mid-run)").or_default() += 1;
                if let Some(log) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(log, "UPDATE {what}");
                }
                guarded(&format!("{ctx} event {k} ({what}): updated config rejected"), || {
                    h.update(|c| *c = (**config).clone())
                });
                o.set_config(config, h.now);
            }
            Event::Send { port, frame, what } => {
                let real = capture::send(&mut h, port, frame);
                let want = o.process(port, frame, h.now);
                let same = real.verdict == want.short()
                    && match &want {
                        Verdict::Forward { dst_mac, .. } => real.dst_mac == Some(*dst_mac),
                        _ => true,
                    };
                if let (true, Verdict::Forward { dst_mac, .. }) = (same, &want) {
                    if let Err(e) = oracle::check_forwarded(frame, &real.out, *dst_mac, o.world.router_mac) {
                        return Err(format!(
                            "BAD OUTPUT FRAME\n  seed {seed}, config {index}, frame {n} (event {k}), port {port}\n  frame: {what}\n  in:  {}\n  out: {}\n  {e}",
                            hex(frame),
                            hex(&real.out)
                        ));
                    }
                }
                *tally.entry(want.short().split(':').take(2).collect::<Vec<_>>().join(":")).or_default() += 1;
                if !same {
                    let want_mac = match &want {
                        Verdict::Forward { dst_mac, .. } => Some(*dst_mac),
                        _ => None,
                    };
                    // The pipeline's reasoning just before the frame: replay up to it.
                    let explain = replay_explain(&sc, k, port, frame);
                    let path = std::env::temp_dir().join(format!("vpcgate-diff-{seed}-{index}.json"));
                    let _ = std::fs::write(&path, sc.config.to_json());
                    return Err(format!(
                        "DISAGREEMENT\n  seed {seed}, config {index}, frame {n} (event {k}), port {port}\n  frame: {what}\n  bytes: {}\n  pipeline: {} (dst MAC {})\n  oracle:   {} (dst MAC {})\n  oracle's reasoning:\n    {}\n  pipeline's explanation:\n    {}\n  initial config written to {}\n  rerun: VPCGATE_DIFF_SEED={seed} VPCGATE_DIFF_ONLY={index} VPCGATE_DIFF_FRAMES={frames}",
                        hex(frame),
                        real.verdict,
                        mac(real.dst_mac),
                        want.short(),
                        mac(want_mac),
                        o.trace.join("\n    "),
                        explain.join("\n    "),
                        path.display(),
                    ));
                }
                if let Some(log) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(
                        log,
                        "{n} t={}.{:09} {port} {what} => {} | oracle {}",
                        (h.now - T0) / 1_000_000_000,
                        (h.now - T0) % 1_000_000_000,
                        real.verdict,
                        want.short()
                    );
                    for l in &o.trace {
                        let _ = writeln!(log, "      {l}");
                    }
                    let avail: Vec<String> = h
                        .tables
                        .enis
                        .iter()
                        .flatten()
                        .map(|e| format!("{}/{}", h.pipeline.conntrack_available(&h.tables, e.key), o.available(&e.id)))
                        .collect();
                    let _ = writeln!(log, "      available (pipeline/oracle): {}", avail.join(" "));
                }
                if ct_check {
                    for e in h.tables.enis.iter().flatten() {
                        let real = h.pipeline.conntrack_available(&h.tables, e.key) as u64;
                        let want = o.available(&e.id);
                        if real != want {
                            return Err(format!(
                                "CONNTRACK AVAILABLE differs after frame {n} (event {k}) {what}: ENI {} pipeline {real} oracle {want}\n    {}",
                                e.id,
                                o.dump(h.now).join("\n    ")
                            ));
                        }
                    }
                }
                n += 1;
            }
        }
    }
    for (k, v) in &o.seen {
        *seen.entry(k).or_default() += v;
    }
    *seen.entry(FLOW_CACHE_HITS).or_default() += h.pipeline.stats.flow_cache_hits;
    Ok(n)
}

/// Frames the pipeline carried out from its flow cache: the agreement covers that path.
const FLOW_CACHE_HITS: &str = "(pipeline frames from the flow cache)";

fn replay_explain(sc: &diffgen::Scenario, upto: usize, port: &str, frame: &[u8]) -> Vec<String> {
    let mut h = real_system(sc.config.clone());
    for ev in &sc.events[..upto] {
        match ev {
            Event::Advance(ns) => h.now += ns,
            Event::Update { config, .. } => h.update(|c| *c = (**config).clone()),
            Event::Send { port, frame, .. } => {
                capture::send(&mut h, port, frame);
            }
        }
    }
    h.explain(port, frame)
}

#[test]
fn pipeline_agrees_with_the_oracle_on_random_configs_and_traffic() {
    let seed = env("VPCGATE_DIFF_SEED", 0x7670_6367_6174_6531);
    let configs = env("VPCGATE_DIFF_CONFIGS", 60);
    let frames = env("VPCGATE_DIFF_FRAMES", 500) as usize;
    let only = std::env::var("VPCGATE_DIFF_ONLY").ok().map(|v| v.parse::<u64>().unwrap());
    let start = Instant::now();
    let mut total = 0usize;
    let mut tally = BTreeMap::new();
    let mut seen = BTreeMap::new();
    let range: Vec<u64> = match only {
        Some(i) => vec![i],
        None => (0..configs).collect(),
    };
    for &i in &range {
        match run_one(seed, i, frames, &mut tally, &mut seen) {
            Ok(n) => total += n,
            Err(report) => panic!("{report}"),
        }
    }
    eprintln!(
        "differential: seed {seed:#x}, {} configs, {total} frames, 0 disagreements, {:.1} s",
        range.len(),
        start.elapsed().as_secs_f64()
    );
    eprintln!("verdicts seen:");
    for (k, v) in &tally {
        eprintln!("  {k:24} {v}");
    }
    eprintln!("cases met (oracle's count):");
    for (k, v) in &seen {
        eprintln!("  {k:50} {v}");
    }
    assert!(seen.get(FLOW_CACHE_HITS).is_some_and(|&n| n > 0), "no frame took the flow cache");
}

// ------------------------------------------------------------------ targeted tests
//
// One behaviour each, from the rows of sections 7 and 7.1: every frame goes through
// both the pipeline and the oracle (which must agree), and the test also states what
// the spec says the verdict is.

mod rows {
    use super::*;
    use dataplane::addr::Mac;
    use dataplane::testkit::{self, Flags, Host};
    use mgmt::model::*;
    use std::net::IpAddr;

    pub const ROUTER: &str = "02:76:70:63:67:01";
    pub const GW: &str = "02:00:00:00:ff:01";

    pub struct Pair {
        pub h: Harness,
        pub o: Oracle,
        pub cfg: Config,
        pub log: Vec<String>,
    }

    impl Pair {
        pub fn new(cfg: Config) -> Pair {
            Pair { h: real_system(cfg.clone()), o: Oracle::new(&cfg), cfg, log: Vec::new() }
        }

        /// Sends a frame to both; panics if they disagree; returns the verdict.
        pub fn send(&mut self, port: &str, frame: &[u8]) -> String {
            let explain = self.h.explain(port, frame);
            let real = capture::send(&mut self.h, port, frame);
            let want = self.o.process(port, frame, self.h.now);
            let want_mac = match &want {
                Verdict::Forward { dst_mac, .. } => Some(*dst_mac),
                _ => None,
            };
            self.log.push(format!("{port}: {} / oracle {}", real.verdict, want.short()));
            if let Some(m) = want_mac {
                if let Err(e) = oracle::check_forwarded(frame, &real.out, m, self.o.world.router_mac) {
                    panic!("bad output frame {}: {e}", hex(&real.out));
                }
            }
            if real.verdict != want.short() || (want_mac.is_some() && real.dst_mac != want_mac) {
                panic!(
                    "DISAGREEMENT on {port} {}\n  pipeline {} ({})\n  oracle {} ({})\n  oracle:\n    {}\n  pipeline:\n    {}\n  history:\n    {}",
                    hex(frame),
                    real.verdict,
                    mac(real.dst_mac),
                    want.short(),
                    mac(want_mac),
                    self.o.trace.join("\n    "),
                    explain.join("\n    "),
                    self.log.join("\n    ")
                );
            }
            for e in self.h.tables.enis.iter().flatten() {
                let real = self.h.pipeline.conntrack_available(&self.h.tables, e.key) as u64;
                assert_eq!(
                    real,
                    self.o.available(&e.id),
                    "conntrack_allowance_available of {} after {port} {}:\n    {}",
                    e.id,
                    hex(frame),
                    self.o.dump(self.h.now).join("\n    ")
                );
            }
            real.verdict
        }

        pub fn advance_ns(&mut self, ns: u64) {
            self.h.now += ns;
        }

        pub fn advance_secs(&mut self, s: u64) {
            self.h.now += s * 1_000_000_000;
        }

        pub fn update(&mut self, f: impl FnOnce(&mut Config)) {
            f(&mut self.cfg);
            let c = self.cfg.clone();
            self.h.update(|x| *x = c);
            self.o.set_config(&self.cfg, self.h.now);
        }
    }

    pub fn router() -> Mac {
        Mac::parse(ROUTER).unwrap()
    }

    pub fn host(mac: &str, ip: &str) -> Host {
        Host::new(mac, ip)
    }

    /// a, b: subnet 10.0.1.0/24 on port pa; c: 10.0.2.0/24 on port pc; uplink. One
    /// VPC 10.0.0.0/16 with 2600:1f18:1:100::/56. Each ENI has its own group
    /// (sg-0000000a/b/c), with no rules: tests add what they need.
    pub fn base() -> Config {
        let mut c = Config::default();
        c.vpcs.push(Vpc {
            vpc_id: "vpc-00000001".into(),
            cidr_block: Some("10.0.0.0/16".into()),
            ipv6_cidr_block_association_set: vec![Ipv6CidrAssociation {
                ipv6_cidr_block: "2600:1f18:1:100::/56".into(),
                extra: Default::default(),
            }],
            ..Default::default()
        });
        for (id, cidr, v6) in [
            ("subnet-00000001", "10.0.1.0/24", "2600:1f18:1:101::/64"),
            ("subnet-00000002", "10.0.2.0/24", "2600:1f18:1:102::/64"),
        ] {
            c.subnets.push(Subnet {
                subnet_id: id.into(),
                vpc_id: "vpc-00000001".into(),
                cidr_block: cidr.into(),
                ipv6_cidr_block_association_set: vec![Ipv6CidrAssociation {
                    ipv6_cidr_block: v6.into(),
                    extra: Default::default(),
                }],
                ..Default::default()
            });
        }
        for (n, subnet, ip, ip6) in [
            ("a", "subnet-00000001", "10.0.1.10", "2600:1f18:1:101::10"),
            ("b", "subnet-00000001", "10.0.1.20", "2600:1f18:1:101::20"),
            ("c", "subnet-00000002", "10.0.2.10", "2600:1f18:1:102::10"),
        ] {
            c.security_groups.push(SecurityGroup {
                group_id: format!("sg-0000000{n}"),
                group_name: format!("group-{n}"),
                description: "test".into(),
                vpc_id: "vpc-00000001".into(),
                ..Default::default()
            });
            c.network_interfaces.push(NetworkInterface {
                network_interface_id: format!("eni-0000000{n}"),
                subnet_id: subnet.into(),
                vpc_id: "vpc-00000001".into(),
                mac_address: mac_of(n).into(),
                private_ip_address: Some(ip.into()),
                private_ip_addresses: vec![PrivateIpAddress {
                    private_ip_address: ip.into(),
                    primary: true,
                    extra: Default::default(),
                }],
                ipv6_addresses: vec![Ipv6Address { ipv6_address: ip6.into(), extra: Default::default() }],
                groups: vec![GroupIdentifier { group_id: format!("sg-0000000{n}"), group_name: None }],
                source_dest_check: true,
                ..Default::default()
            });
        }
        c.appliance.router_mac = ROUTER.into();
        for (name, enis) in [("pa", vec!["eni-0000000a", "eni-0000000b"]), ("pc", vec!["eni-0000000c"])] {
            c.appliance.ports.push(PortConfig {
                name: name.into(),
                interface: format!("vg-{name}"),
                network_interface_ids: enis.into_iter().map(String::from).collect(),
                uplink: false,
                gateway_mac: None,
            });
        }
        c.appliance.ports.push(PortConfig {
            name: "up".into(),
            interface: "vg-up".into(),
            network_interface_ids: vec![],
            uplink: true,
            gateway_mac: Some(GW.into()),
        });
        c
    }

    pub fn mac_of(n: &str) -> &'static str {
        match n {
            "a" => "02:00:00:00:01:0a",
            "b" => "02:00:00:00:01:14",
            _ => "02:00:00:00:02:0a",
        }
    }

    pub fn a() -> Host {
        host(mac_of("a"), "10.0.1.10")
    }
    pub fn b() -> Host {
        host(mac_of("b"), "10.0.1.20")
    }
    pub fn c() -> Host {
        host(mac_of("c"), "10.0.2.10")
    }
    pub fn a6() -> Host {
        host(mac_of("a"), "2600:1f18:1:101::10")
    }
    pub fn ext() -> Host {
        host(GW, "203.0.113.10")
    }
    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub fn perm(proto: &str, from: Option<i64>, to: Option<i64>, cidr: &str) -> IpPermission {
        let mut p = IpPermission { ip_protocol: proto.into(), from_port: from, to_port: to, ..Default::default() };
        if cidr.starts_with("sg-") {
            p.user_id_group_pairs.push(UserIdGroupPair { group_id: Some(cidr.into()), ..Default::default() });
        } else if cidr.contains(':') {
            p.ipv6_ranges.push(Ipv6Range { cidr_ipv6: cidr.into(), description: None });
        } else {
            p.ip_ranges.push(IpRange { cidr_ip: cidr.into(), description: None });
        }
        p
    }

    pub fn sg<'a>(c: &'a mut Config, n: &str) -> &'a mut SecurityGroup {
        let id = format!("sg-0000000{n}");
        c.security_groups.iter_mut().find(|g| g.group_id == id).unwrap()
    }

    pub fn tcp(from: &Host, to: &str, sport: u16, dport: u16, flags: Flags) -> Vec<u8> {
        testkit::tcp(from, ip(to), router(), sport, dport, flags, 1, 1, &[])
    }

    pub fn udp(from: &Host, to: &str, sport: u16, dport: u16) -> Vec<u8> {
        testkit::udp(from, ip(to), router(), sport, dport, b"x")
    }

    pub fn echo(from: &Host, to: &str, id: u16, reply: bool) -> Vec<u8> {
        testkit::echo(from, ip(to), router(), id, 1, reply)
    }

    pub fn icmp(from: &Host, to: &str, ty: u8, code: u8, rest: [u8; 4]) -> Vec<u8> {
        testkit::icmp(from, ip(to), router(), ty, code, rest, &[0u8; 8])
    }

    pub fn icmp_error(from: &Host, to: &str, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
        testkit::icmp_error(from, ip(to), router(), ty, code, quoted)
    }

    pub fn other(from: &Host, to: &str, proto: u8) -> Vec<u8> {
        testkit::other(from, ip(to), router(), proto, &[0u8; 20])
    }

    pub fn entry(number: i64, egress: bool, proto: &str, cidr: &str, allow: bool) -> NetworkAclEntry {
        let mut e = NetworkAclEntry {
            rule_number: number,
            protocol: proto.into(),
            rule_action: if allow { "allow" } else { "deny" }.into(),
            egress,
            ..Default::default()
        };
        if cidr.contains(':') {
            e.ipv6_cidr_block = Some(cidr.into());
        } else {
            e.cidr_block = Some(cidr.into());
        }
        if proto == "6" || proto == "17" {
            e.port_range = Some(PortRange { from: Some(0), to: Some(65535) });
        }
        if proto == "1" || (proto == "58" && cidr.contains(':')) {
            e.icmp_type_code = Some(IcmpTypeCode { r#type: Some(-1), code: Some(-1) });
        }
        e
    }

    /// Gives `subnet` a custom NACL with these entries.
    pub fn nacl(c: &mut Config, subnet: &str, entries: Vec<NetworkAclEntry>) {
        let id = format!("acl-{}", &subnet[7..]);
        c.network_acls.retain(|a| a.network_acl_id != id);
        c.network_acls.push(NetworkAcl {
            network_acl_id: id.clone(),
            vpc_id: "vpc-00000001".into(),
            is_default: false,
            entries,
            associations: vec![NetworkAclAssociation {
                network_acl_association_id: format!("aclassoc-{}", &subnet[7..]),
                network_acl_id: id,
                subnet_id: subnet.into(),
            }],
            ..Default::default()
        });
    }

    /// Every ENI: all in and out (IPv4 and IPv6) from/to the VPC only, so flows are
    /// tracked (no /0 rules).
    pub fn open_inside(c: &mut Config) {
        for n in ["a", "b", "c"] {
            let g = sg(c, n);
            g.ip_permissions.push(perm("-1", None, None, "10.0.0.0/16"));
            g.ip_permissions.push(perm("-1", None, None, "2600:1f18:1:100::/56"));
            g.ip_permissions_egress.push(perm("-1", None, None, "10.0.0.0/16"));
            g.ip_permissions_egress.push(perm("-1", None, None, "2600:1f18:1:100::/56"));
        }
    }
}

use dataplane::testkit::{self, Flags};
use mgmt::model::*;
use rows::*;

/// 7.1 "TCP handshake state": after a SYN-ACK, the next ACK without SYN in either
/// direction completes the handshake; a FIN in one direction only keeps the
/// established timeout. Frames refused before reaching an ENI change nothing there.
#[test]
fn tcp_handshake_completes_on_the_next_ack_either_direction() {
    let mut cfg = base();
    cfg.network_interfaces[0].connection_tracking_configuration =
        Some(ConnectionTrackingConfiguration { tcp_established_timeout: Some(120), ..Default::default() });
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("tcp", Some(0), Some(65535), "203.0.113.0/24"));
    // the NACL of a's subnet refuses everything from the outside host
    cfg.network_acls.push(NetworkAcl {
        network_acl_id: "acl-0000000a".into(),
        vpc_id: "vpc-00000001".into(),
        is_default: false,
        entries: vec![NetworkAclEntry {
            rule_number: 100,
            protocol: "-1".into(),
            rule_action: "allow".into(),
            egress: true,
            cidr_block: Some("0.0.0.0/0".into()),
            ..Default::default()
        }],
        associations: vec![NetworkAclAssociation {
            network_acl_association_id: "aclassoc-0000000a".into(),
            network_acl_id: "acl-0000000a".into(),
            subnet_id: "subnet-00000001".into(),
        }],
        ..Default::default()
    });
    let mut t = Pair::new(cfg);
    let x = "203.0.113.10";
    assert_eq!(t.send("pa", &tcp(&a(), x, 80, 40000, Flags::SYN_ACK)), "forward:up");
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.1.10", 40000, 80, Flags::FIN_ACK)), "reject:nacl-ingress");
    assert_eq!(t.send("pa", &tcp(&a(), x, 80, 40000, Flags::PSH_ACK)), "forward:up");
    assert_eq!(t.send("pa", &tcp(&a(), x, 80, 40000, Flags::FIN_ACK)), "forward:up");
    // established (120 s), not handshake (60 s) nor closing (10 s)
    t.advance_secs(100);
    t.update(|c| sg(c, "a").ip_permissions_egress.clear());
    assert_eq!(t.send("pa", &tcp(&a(), x, 80, 40000, Flags::ACK)), "forward:up");
}

const SEC: u64 = 1_000_000_000;

fn with_ct(c: &mut Config, eni: usize, tcp: Option<i64>, udp: Option<i64>, stream: Option<i64>) {
    c.network_interfaces[eni].connection_tracking_configuration = Some(ConnectionTrackingConfiguration {
        tcp_established_timeout: tcp,
        udp_timeout: udp,
        udp_stream_timeout: stream,
    });
}

/// a may send anything to c and c take anything from a (by /32, so tracked).
fn a_to_c_allowed(c: &mut Config) {
    sg(c, "a").ip_permissions_egress.push(perm("-1", None, None, "10.0.2.10/32"));
    sg(c, "c").ip_permissions.push(perm("-1", None, None, "10.0.1.10/32"));
}

fn revoke_all(c: &mut Config) {
    for g in c.security_groups.iter_mut() {
        g.ip_permissions.clear();
        g.ip_permissions_egress.clear();
    }
}

/// 7 "SG reference match set": every private IPv4 (primary and secondary) and every
/// IPv6 address of every ENI having the group; membership changes apply.
#[test]
fn sg_reference_matches_every_address_of_every_member() {
    let mut cfg = base();
    cfg.network_interfaces[0].private_ip_addresses.push(PrivateIpAddress {
        private_ip_address: "10.0.1.11".into(),
        primary: false,
        extra: Default::default(),
    });
    for n in ["a", "b"] {
        sg(&mut cfg, n).ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
        sg(&mut cfg, n).ip_permissions_egress.push(perm("-1", None, None, "::/0"));
    }
    sg(&mut cfg, "c").ip_permissions.push(perm("tcp", Some(22), Some(22), "sg-0000000a"));
    let mut t = Pair::new(cfg);
    let a2 = host(mac_of("a"), "10.0.1.11");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40001, 22, Flags::SYN)), "forward:pc");
    assert_eq!(t.send("pa", &tcp(&a2, "10.0.2.10", 40002, 22, Flags::SYN)), "forward:pc");
    assert_eq!(t.send("pa", &tcp(&a6(), "2600:1f18:1:102::10", 40003, 22, Flags::SYN)), "forward:pc");
    assert_eq!(t.send("pa", &tcp(&b(), "10.0.2.10", 40004, 22, Flags::SYN)), "reject:sg-ingress");
    t.update(|c| {
        c.network_interfaces[1].groups.push(GroupIdentifier { group_id: "sg-0000000a".into(), group_name: None })
    });
    assert_eq!(t.send("pa", &tcp(&b(), "10.0.2.10", 40005, 22, Flags::SYN)), "forward:pc");
    t.update(|c| c.network_interfaces[0].groups[0].group_id = "sg-0000000b".into());
    // a left the group: a new flow is refused, the tracked one goes on
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40006, 22, Flags::SYN)), "reject:sg-ingress");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40001, 22, Flags::ACK)), "forward:pc");
}

/// 7.1 "Config completion" and 1.2 / 3.2: no default SG or NACL in the document: the
/// ones AWS creates; an ENI without groups gets its VPC's default SG.
#[test]
fn missing_defaults_are_completed_and_groupless_enis_get_the_default_sg() {
    let mut cfg = base();
    cfg.network_interfaces[0].groups.clear();
    cfg.network_interfaces[1].groups.clear();
    sg(&mut cfg, "c").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    // default SG: all inbound from itself, all outbound to 0.0.0.0/0 and ::/0
    assert_eq!(t.send("pa", &udp(&b(), "10.0.1.10", 5000, 6000)), "forward:pa");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5000, 53)), "forward:up");
    assert_eq!(t.send("pa", &udp(&a6(), "2001:db8::1", 5000, 53)), "forward:up");
    assert_eq!(t.send("pc", &udp(&c(), "10.0.1.10", 5000, 6000)), "reject:sg-ingress");
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 7000, 22)), "reject:sg-ingress");
    // the reply to a's query comes back by conntrack; default NACL allows all
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5000)), "forward:pa");
}

/// 7 "TCP timeouts" / "TCP state for timeouts": handshake 60 s.
#[test]
fn tcp_handshake_entries_expire_after_60_seconds() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::SYN)), "forward:pc");
    t.update(revoke_all);
    t.advance_secs(60); // idle == timeout: not expired
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::SYN)), "forward:pc");
    t.advance_ns(60 * SEC + 1);
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::SYN)), "reject:sg-egress");
}

/// 7 "TCP timeouts": after FIN both ways, or any RST, 10 s.
#[test]
fn tcp_closed_entries_expire_after_10_seconds() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    let mut t = Pair::new(cfg);
    let s = |t: &mut Pair, fwd: bool, f: Flags, sport: u16| {
        if fwd {
            t.send("pa", &tcp(&a(), "10.0.2.10", sport, 80, f))
        } else {
            t.send("pc", &tcp(&c(), "10.0.1.10", 80, sport, f))
        }
    };
    for (fwd, f) in [
        (true, Flags::SYN),
        (false, Flags::SYN_ACK),
        (true, Flags::ACK),
        (true, Flags::FIN_ACK),
        (false, Flags::FIN_ACK),
        (true, Flags::ACK),
    ] {
        assert_eq!(s(&mut t, fwd, f, 40000), if fwd { "forward:pc" } else { "forward:pa" });
    }
    for (fwd, f) in [(true, Flags::SYN), (false, Flags::SYN_ACK), (true, Flags::ACK), (false, Flags::RST)] {
        assert_eq!(s(&mut t, fwd, f, 40001), if fwd { "forward:pc" } else { "forward:pa" });
    }
    t.update(revoke_all);
    t.advance_secs(10);
    assert_eq!(s(&mut t, true, Flags::ACK, 40000), "forward:pc");
    assert_eq!(s(&mut t, true, Flags::ACK, 40001), "forward:pc");
    t.advance_ns(10 * SEC + 1);
    assert_eq!(s(&mut t, true, Flags::ACK, 40000), "reject:sg-egress");
    assert_eq!(s(&mut t, false, Flags::ACK, 40001), "reject:sg-egress");
}

/// 7 "TCP timeouts" (ESTABLISHED per ENI) and "Conntrack updates": the two ends of a
/// flow expire at different times.
#[test]
fn tcp_established_timeout_is_per_eni_and_ends_expire_apart() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    with_ct(&mut cfg, 0, Some(90), None, None);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::SYN)), "forward:pc");
    assert_eq!(t.send("pc", &tcp(&c(), "10.0.1.10", 80, 40000, Flags::SYN_ACK)), "forward:pa");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::ACK)), "forward:pc");
    t.update(revoke_all);
    t.advance_secs(90);
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::ACK)), "forward:pc");
    t.advance_ns(90 * SEC + 1);
    // a's end (90 s) has expired; c's (432000 s) has not
    assert_eq!(t.send("pc", &tcp(&c(), "10.0.1.10", 80, 40000, Flags::ACK)), "reject:sg-ingress");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::ACK)), "reject:sg-egress");
}

/// 7 "UDP timeouts" and 7.1 "UDP stream": UdpTimeout until each direction carried 2
/// packets, then UdpStreamTimeout.
#[test]
fn udp_becomes_a_stream_after_two_packets_each_way() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    with_ct(&mut cfg, 0, None, Some(40), Some(100));
    with_ct(&mut cfg, 2, None, Some(60), Some(180));
    let mut t = Pair::new(cfg);
    let ac = |t: &mut Pair, p: u16| t.send("pa", &udp(&a(), "10.0.2.10", p, 53));
    let ca = |t: &mut Pair, p: u16| t.send("pc", &udp(&c(), "10.0.1.10", 53, p));
    // not a stream: 3 one way, 1 back
    for _ in 0..3 {
        assert_eq!(ac(&mut t, 5001), "forward:pc");
    }
    assert_eq!(ca(&mut t, 5001), "forward:pa");
    // a stream: 2 each way
    for _ in 0..2 {
        assert_eq!(ac(&mut t, 5002), "forward:pc");
        assert_eq!(ca(&mut t, 5002), "forward:pa");
    }
    t.update(revoke_all);
    t.advance_ns(40 * SEC + 1);
    assert_eq!(ac(&mut t, 5001), "reject:sg-egress");
    assert_eq!(ac(&mut t, 5002), "forward:pc");
    t.advance_secs(100);
    assert_eq!(ac(&mut t, 5002), "forward:pc");
    t.advance_ns(100 * SEC + 1);
    assert_eq!(ac(&mut t, 5002), "reject:sg-egress");
}

/// 7 "ICMP / other protocols": ICMP queries 30 s, other protocols 600 s; 7.1 "ICMP
/// queries": tracked by (addresses, request type, identifier).
#[test]
fn icmp_queries_30_seconds_other_protocols_600() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &echo(&a(), "10.0.2.10", 7, false)), "forward:pc");
    assert_eq!(t.send("pa", &icmp(&a(), "10.0.2.10", 13, 0, [0, 9, 0, 0])), "forward:pc");
    assert_eq!(t.send("pa", &other(&a(), "10.0.2.10", 47)), "forward:pc");
    t.update(revoke_all);
    t.advance_secs(30);
    assert_eq!(t.send("pc", &echo(&c(), "10.0.1.10", 7, true)), "forward:pa");
    assert_eq!(t.send("pc", &echo(&c(), "10.0.1.10", 8, true)), "reject:sg-egress");
    assert_eq!(t.send("pc", &icmp(&c(), "10.0.1.10", 14, 0, [0, 9, 0, 0])), "forward:pa");
    assert_eq!(t.send("pc", &icmp(&c(), "10.0.1.10", 0, 0, [0, 9, 0, 0])), "reject:sg-egress");
    t.advance_ns(30 * SEC + 1);
    assert_eq!(t.send("pc", &echo(&c(), "10.0.1.10", 7, true)), "reject:sg-egress");
    t.advance_secs(539); // 599 s + 1 ns after the first packet
    assert_eq!(t.send("pc", &other(&c(), "10.0.1.10", 47)), "forward:pa");
    assert_eq!(t.send("pc", &other(&c(), "10.0.1.10", 50)), "reject:sg-egress");
    t.advance_ns(600 * SEC + 1);
    assert_eq!(t.send("pa", &other(&a(), "10.0.2.10", 47)), "reject:sg-egress");
}

/// 7 "ICMP errors" and 7.1 "ICMP that is not a query": an error about a tracked flow
/// is related (NACLs still judge it); other non-query ICMP is judged every time and
/// creates no entry.
#[test]
fn icmp_errors_about_tracked_flows_are_related() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("tcp", Some(0), Some(65535), "0.0.0.0/0"));
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("icmp", Some(5), Some(-1), "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    let syn = tcp(&a(), "203.0.113.10", 40000, 443, Flags::SYN);
    assert_eq!(t.send("pa", &syn), "forward:up");
    assert_eq!(t.send("up", &icmp_error(&ext(), "10.0.1.10", 3, 4, &syn)), "forward:pa");
    assert_eq!(t.send("up", &icmp_error(&ext(), "10.0.1.10", 11, 0, &syn)), "forward:pa");
    // parameter problem is not one of the three kinds: judged by the rules
    assert_eq!(t.send("up", &icmp_error(&ext(), "10.0.1.10", 12, 0, &syn)), "reject:sg-ingress");
    let other_flow = tcp(&a(), "203.0.113.10", 40001, 443, Flags::SYN);
    assert_eq!(t.send("up", &icmp_error(&ext(), "10.0.1.10", 3, 4, &other_flow)), "reject:sg-ingress");
    // a redirect allowed by the rules creates nothing
    assert_eq!(t.send("pa", &icmp(&a(), "203.0.113.10", 5, 1, [0; 4])), "forward:up");
    assert_eq!(t.send("up", &icmp(&ext(), "10.0.1.10", 5, 1, [0; 4])), "reject:sg-ingress");
    // NACLs judge the error as ICMP of its type
    t.update(|c| {
        nacl(
            c,
            "subnet-00000001",
            vec![
                entry(10, false, "1", "0.0.0.0/0", false),
                entry(100, false, "-1", "0.0.0.0/0", true),
                entry(100, true, "-1", "0.0.0.0/0", true),
            ],
        )
    });
    assert_eq!(t.send("up", &icmp_error(&ext(), "10.0.1.10", 3, 4, &syn)), "reject:nacl-ingress");
}

/// 7 "Conntrack capacity": when full, a packet needing a new entry is dropped;
/// established flows are unaffected.
#[test]
fn conntrack_full_drops_only_packets_needing_a_new_entry() {
    let mut cfg = base();
    cfg.appliance.conntrack.max_entries = 2;
    cfg.appliance.conntrack.max_entries_per_eni = 2;
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "forward:up");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "forward:up");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5003, 53)), "drop:conntrack-full");
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5001)), "forward:pa");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "forward:up");
    // refused before capacity matters
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5004, 54)), "reject:sg-egress");
}

/// 7 "Untracked flows", 7.1 "Untracked, both directions", 2.3, three-tier row 15:
/// an all-open flow has no entry and stops as soon as its rule goes.
#[test]
fn untracked_flows_stop_when_their_rule_is_revoked() {
    let mut cfg = base();
    sg(&mut cfg, "c").ip_permissions.push(perm("tcp", Some(80), Some(80), "0.0.0.0/0"));
    sg(&mut cfg, "c").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    let before = t.o.available("eni-0000000c");
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40000, 80, Flags::SYN)), "forward:pc");
    // the answer: out on a /0 all-ports rule, its source port allowed in by a /0 rule
    assert_eq!(t.send("pc", &tcp(&c(), "203.0.113.10", 80, 40000, Flags::SYN_ACK)), "forward:up");
    assert_eq!(t.o.available("eni-0000000c"), before, "untracked: no entry");
    t.update(|c| sg(c, "c").ip_permissions.clear());
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40000, 80, Flags::ACK)), "reject:sg-ingress");
    // the other family is judged separately: IPv6 has no /0 rule, so it is tracked
    t.update(|c| {
        sg(c, "c").ip_permissions.push(perm("tcp", Some(80), Some(80), "0.0.0.0/0"));
        sg(c, "c").ip_permissions.push(perm("tcp", Some(80), Some(80), "2001:db8::/32"));
        sg(c, "c").ip_permissions_egress.push(perm("-1", None, None, "2001:db8::/32"));
    });
    let x6 = host(GW, "2001:db8::7");
    assert_eq!(t.send("up", &tcp(&x6, "2600:1f18:1:102::10", 40000, 80, Flags::SYN)), "forward:pc");
    t.update(|c| sg(c, "c").ip_permissions.clear());
    assert_eq!(t.send("up", &tcp(&x6, "2600:1f18:1:102::10", 40000, 80, Flags::ACK)), "forward:pc");
}

/// 2.3 and three-tier row 14: a tracked flow survives the revocation of its rule; and
/// 7.1: a live entry wins, tracked flows stay tracked after rules open up.
#[test]
fn tracked_flows_survive_revocation_and_stay_tracked_when_rules_open() {
    let mut cfg = base();
    sg(&mut cfg, "c").ip_permissions.push(perm("tcp", Some(80), Some(80), "203.0.113.0/24"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40000, 80, Flags::SYN)), "forward:pc");
    assert_eq!(t.send("pc", &tcp(&c(), "203.0.113.10", 80, 40000, Flags::SYN_ACK)), "forward:up");
    t.update(|c| {
        sg(c, "c").ip_permissions.push(perm("tcp", Some(80), Some(80), "0.0.0.0/0"));
        sg(c, "c").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    });
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40000, 80, Flags::ACK)), "forward:pc");
    t.update(revoke_all);
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40000, 80, Flags::PSH_ACK)), "forward:pc");
    assert_eq!(t.send("pc", &tcp(&c(), "203.0.113.10", 80, 40000, Flags::PSH_ACK)), "forward:up");
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 40001, 80, Flags::SYN)), "reject:sg-ingress");
}

/// 7 "Source/destination check": per ENI, default on.
#[test]
fn source_destination_check_is_per_eni() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    let spoof = host(mac_of("a"), "10.0.1.99");
    assert_eq!(t.send("pa", &udp(&spoof, "203.0.113.10", 1, 2)), "drop:src-dst-check");
    let spoof_b = host(mac_of("a"), "10.0.1.20");
    assert_eq!(t.send("pa", &udp(&spoof_b, "203.0.113.10", 1, 2)), "drop:src-dst-check");
    t.update(|c| c.network_interfaces[0].source_dest_check = false);
    assert_eq!(t.send("pa", &udp(&spoof, "203.0.113.10", 1, 2)), "forward:up");
    assert_eq!(t.send("pa", &udp(&spoof_b, "203.0.113.10", 1, 2)), "forward:up");
}

/// 7 "Fragments" and 7.1 "Fragments (details)".
#[test]
fn later_fragments_take_the_first_fragments_verdict_for_30_seconds() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "0.0.0.0/0"));
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "::/0"));
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("tcp", Some(0), Some(65535), "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    let r = router();
    let big = testkit::udp(&a(), ip("203.0.113.10"), r, 5000, 53, &[7u8; 100]);
    let f = testkit::fragment(&big, 32, 77);
    assert_eq!(t.send("pa", &f[1]), "drop:fragment-orphan");
    assert_eq!(t.send("pa", &f[0]), "forward:up");
    assert_eq!(t.send("pa", &f[1]), "forward:up");
    t.advance_secs(30);
    assert_eq!(t.send("pa", &f[2]), "forward:up");
    t.advance_ns(1);
    assert_eq!(t.send("pa", &f[3]), "drop:fragment-orphan");
    // pre-policy checks still run for later fragments
    let mut unknown = f[2].clone();
    unknown[6..12].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    assert_eq!(t.send("pa", &f[0]), "forward:up");
    assert_eq!(t.send("pa", &unknown), "drop:unknown-source");
    // a refused first fragment: the later ones are refused by the same hop
    let refused = testkit::udp(&a(), ip("203.0.113.10"), r, 5000, 54, &[7u8; 100]);
    let g = testkit::fragment(&refused, 32, 78);
    assert_eq!(t.send("pa", &g[0]), "reject:sg-egress");
    assert_eq!(t.send("pa", &g[1]), "reject:sg-egress");
    // IPv6: fragment header, keyed on (src, dst, id)
    let big6 = testkit::udp(&a6(), ip("2001:db8::1"), r, 5000, 53, &[7u8; 100]);
    let h = testkit::fragment(&big6, 32, 0x1234_5678);
    assert_eq!(t.send("pa", &h[0]), "forward:up");
    assert_eq!(t.send("pa", &h[2]), "forward:up");
    // an atomic fragment (offset 0, no more) is a whole datagram
    let atomic = testkit::fragment(&testkit::udp(&a6(), ip("2001:db8::1"), r, 5000, 53, &[1; 8]), 64, 9);
    assert_eq!(atomic.len(), 1);
    assert_eq!(t.send("pa", &atomic[0]), "forward:up");
    // TCP: a tiny first fragment and a later fragment at offset 8 bytes are malformed
    let seg = testkit::tcp(&a(), ip("203.0.113.10"), r, 40000, 443, Flags::PSH_ACK, 1, 1, &[0u8; 40]);
    let k = testkit::fragment(&seg, 8, 79);
    assert_eq!(t.send("pa", &k[0]), "drop:malformed");
    assert_eq!(t.send("pa", &k[1]), "drop:malformed");
    let k = testkit::fragment(&seg, 24, 80);
    assert_eq!(t.send("pa", &k[0]), "forward:up");
    assert_eq!(t.send("pa", &k[1]), "forward:up");
}

/// 7 "Malformed packets" and 7.1 "Drop order": malformed comes first.
#[test]
fn malformed_frames_are_dropped_first() {
    let mut t = Pair::new(base());
    let unknown = host("02:00:00:00:09:09", "10.0.1.10");
    let good = udp(&unknown, "10.0.2.10", 1, 2);
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    let mut long = good.clone();
    long[16..18].copy_from_slice(&500u16.to_be_bytes());
    let mut doff = tcp(&a(), "10.0.2.10", 1, 2, Flags::SYN);
    doff[14 + 20 + 12] = 0x40;
    let mut v6len = udp(&a6(), "2600:1f18:1:102::10", 1, 2);
    v6len[18..20].copy_from_slice(&900u16.to_be_bytes());
    for f in [&bad_ihl, &long, &doff, &v6len, &good[..20].to_vec(), &good[..10].to_vec()] {
        assert_eq!(t.send("pa", f), "drop:malformed");
    }
    assert_eq!(t.send("pa", &good), "drop:unknown-source");
}

/// 7 "ARP / IPv6 ND" and 7.1 "ARP / ND details".
#[test]
fn arp_and_neighbour_solicitations_are_answered_for_vpc_addresses() {
    let mut t = Pair::new(base());
    for target in ["10.0.2.10", "10.0.1.1", "10.0.9.9"] {
        assert_eq!(t.send("pa", &testkit::arp_request(&a(), target.parse().unwrap())), "reply");
    }
    assert_eq!(t.send("pa", &testkit::arp_request(&a(), "8.8.8.8".parse().unwrap())), "drop:arp-ignored");
    let probe = host(mac_of("a"), "0.0.0.0");
    assert_eq!(t.send("pa", &testkit::arp_request(&probe, "10.0.1.10".parse().unwrap())), "drop:arp-ignored");
    assert_eq!(t.send("pa", &testkit::arp_request(&a(), "10.0.1.10".parse().unwrap())), "drop:arp-ignored");
    let mut reply = testkit::arp_request(&a(), "10.0.1.1".parse().unwrap());
    reply[21] = 2;
    assert_eq!(t.send("pa", &reply), "drop:arp-ignored");
    let stranger = host("02:00:00:00:09:09", "10.0.1.10");
    assert_eq!(t.send("pa", &testkit::arp_request(&stranger, "10.0.1.1".parse().unwrap())), "drop:unknown-source");
    // the uplink: answered for VPC addresses only
    assert_eq!(t.send("up", &testkit::arp_request(&ext(), "10.0.1.10".parse().unwrap())), "reply");
    assert_eq!(t.send("up", &testkit::arp_request(&ext(), "203.0.113.1".parse().unwrap())), "drop:arp-ignored");
    // neighbour discovery
    let ll = host(mac_of("a"), "fe80::1:2:3:4");
    for target in ["2600:1f18:1:102::10", "fe80::1", "fe80::76:70ff:fe63:6701"] {
        assert_eq!(t.send("pa", &testkit::neighbor_solicit(&ll, target.parse().unwrap())), "reply", "{target}");
    }
    assert_eq!(t.send("pa", &testkit::neighbor_solicit(&ll, "2001:db8::1".parse().unwrap())), "drop:nd-ignored");
    let dad = host(mac_of("a"), "::");
    assert_eq!(
        t.send("pa", &testkit::neighbor_solicit(&dad, "2600:1f18:1:101::10".parse().unwrap())),
        "drop:nd-ignored"
    );
    let mut hop = testkit::neighbor_solicit(&ll, "fe80::1".parse().unwrap());
    hop[14 + 7] = 64;
    assert_eq!(t.send("pa", &hop), "drop:nd-ignored");
    // the uplink: VPC addresses, and (reading R2) the router's link-local addresses
    let gw6 = host(GW, "fe80::ff:1");
    for target in ["2600:1f18:1:101::10", "fe80::1"] {
        assert_eq!(t.send("up", &testkit::neighbor_solicit(&gw6, target.parse().unwrap())), "reply", "{target}");
    }
    assert_eq!(t.send("up", &testkit::neighbor_solicit(&gw6, "2001:db8::9".parse().unwrap())), "drop:nd-ignored");
    let mut lldp = udp(&a(), "10.0.2.10", 1, 2);
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    assert_eq!(t.send("pa", &lldp), "drop:not-ip");
}

/// 7 "Reserved addresses" and 7.1 "Routing".
#[test]
fn unowned_and_special_destinations_are_no_route() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    for d in [
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
        "10.0.1.255",
        "10.0.200.1",
        "169.254.169.254",
        "169.254.169.123",
        "255.255.255.255",
        "224.0.0.5",
        "127.0.0.1",
        "10.0.1.10",
    ] {
        assert_eq!(t.send("pa", &udp(&a(), d, 1, 53)), "drop:no-route", "{d}");
    }
    for d in ["ff02::1", "fe80::1", "::1", "2600:1f18:1:1ff::1"] {
        assert_eq!(t.send("pa", &udp(&a6(), d, 1, 53)), "drop:no-route", "{d}");
    }
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.99", 1, 53)), "drop:no-route");
    assert_eq!(t.send("up", &udp(&ext(), "198.51.100.1", 1, 53)), "drop:no-route");
    assert_eq!(t.send("pa", &udp(&a(), "198.51.100.1", 1, 53)), "forward:up");
    // no uplink: nowhere to go
    t.update(|c| c.appliance.ports.retain(|p| !p.uplink));
    assert_eq!(t.send("pa", &udp(&a(), "198.51.100.1", 1, 53)), "drop:no-route");
}

/// 7 "Order of non-policy drops" and 7.1 "Drop order".
#[test]
fn non_policy_drops_come_in_the_stated_order() {
    let mut t = Pair::new(base());
    // unknown MAC beats source/destination check
    let stranger = host("02:00:00:00:09:09", "10.0.1.99");
    assert_eq!(t.send("pa", &udp(&stranger, "10.0.1.2", 1, 2)), "drop:unknown-source");
    // an ENI's MAC on the wrong port is unknown there
    assert_eq!(t.send("pc", &udp(&a(), "10.0.2.99", 1, 2)), "drop:unknown-source");
    // source/destination check beats no-route
    let spoof = host(mac_of("a"), "10.0.1.99");
    assert_eq!(t.send("pa", &udp(&spoof, "10.0.1.2", 1, 2)), "drop:src-dst-check");
    // uplink spoofing beats no-route
    let inside = host(GW, "10.0.3.3");
    assert_eq!(t.send("up", &udp(&inside, "10.0.1.99", 1, 2)), "drop:unknown-source");
    // no-route beats the fragment memory and the policy
    let f = testkit::fragment(&testkit::udp(&a(), ip("10.0.1.3"), router(), 1, 2, &[0; 64]), 32, 5);
    assert_eq!(t.send("pa", &f[1]), "drop:no-route");
    // the fragment memory comes before the policy: refused everywhere, still orphan
    let g = testkit::fragment(&testkit::udp(&a(), ip("10.0.2.10"), router(), 1, 2, &[0; 64]), 32, 6);
    assert_eq!(t.send("pa", &g[1]), "drop:fragment-orphan");
}

/// 7 "TCP without a conntrack entry" and 7.1 "TCP handshake state": a bare ACK or a
/// late SYN-ACK is judged by the rules and creates an entry, which stays in the 60 s
/// handshake state until it sees a SYN-ACK then an ACK.
#[test]
fn tcp_without_an_entry_is_judged_by_the_rules() {
    let mut cfg = base();
    a_to_c_allowed(&mut cfg);
    with_ct(&mut cfg, 0, Some(3600), None, None);
    with_ct(&mut cfg, 2, Some(3600), None, None);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::ACK)), "forward:pc");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40001, 80, Flags::SYN_ACK)), "forward:pc");
    assert_eq!(t.send("pc", &tcp(&c(), "10.0.1.10", 80, 40001, Flags::ACK)), "forward:pa");
    t.update(revoke_all);
    assert_eq!(t.send("pc", &tcp(&c(), "10.0.1.10", 80, 40000, Flags::PSH_ACK)), "forward:pa");
    t.advance_ns(60 * SEC + 1);
    // the mid-stream entry was still in the handshake state; the other completed
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40000, 80, Flags::ACK)), "reject:sg-egress");
    assert_eq!(t.send("pa", &tcp(&a(), "10.0.2.10", 40001, 80, Flags::ACK)), "forward:pc");
}

/// 7 "Conntrack updates": an entry is created or refreshed only when the frame is
/// forwarded.
#[test]
fn entries_are_created_and_refreshed_only_by_forwarded_frames() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("-1", None, None, "10.0.0.0/16"));
    sg(&mut cfg, "c").ip_permissions_egress.push(perm("-1", None, None, "10.0.0.0/16"));
    let mut t = Pair::new(cfg);
    let before = t.o.available("eni-0000000a");
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5000, 53)), "reject:sg-ingress");
    assert_eq!(t.o.available("eni-0000000a"), before);
    // so c's answer finds no entry at a
    assert_eq!(t.send("pc", &udp(&c(), "10.0.1.10", 53, 5000)), "reject:sg-ingress");
    // refresh: a NACL-refused packet does not keep an entry alive
    t.update(|c| sg(c, "c").ip_permissions.push(perm("-1", None, None, "10.0.1.10/32")));
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5001, 53)), "forward:pc");
    t.update(|c| {
        revoke_all(c);
        nacl(
            c,
            "subnet-00000002",
            vec![entry(10, false, "-1", "0.0.0.0/0", false), entry(10, true, "-1", "0.0.0.0/0", true)],
        );
    });
    t.advance_secs(20);
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5001, 53)), "reject:nacl-ingress");
    t.update(|c| c.network_acls.clear());
    t.advance_ns(10 * SEC + 1);
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5001, 53)), "reject:sg-egress");
}

/// 7.1 "ICMP query replies without an entry": judged as what they are; if forwarded
/// they create an entry opened by their sender.
#[test]
fn icmp_query_replies_without_an_entry_create_one() {
    let mut cfg = base();
    sg(&mut cfg, "c").ip_permissions_egress.push(perm("icmp", Some(0), Some(-1), "10.0.1.10/32"));
    sg(&mut cfg, "a").ip_permissions.push(perm("icmp", Some(0), Some(0), "10.0.2.10/32"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pc", &echo(&c(), "10.0.1.10", 5, false)), "reject:sg-egress");
    assert_eq!(t.send("pc", &echo(&c(), "10.0.1.10", 5, true)), "forward:pa");
    t.update(revoke_all);
    assert_eq!(t.send("pa", &echo(&a(), "10.0.2.10", 5, false)), "forward:pc");
    assert_eq!(t.send("pa", &echo(&a(), "10.0.2.10", 6, false)), "reject:sg-egress");
}

/// 7.1 "Conntrack capacity accounting": an expired entry frees its capacity at the
/// first whole second after it expired; a new entry for its flow replaces it in place
/// before that.
#[test]
fn capacity_is_reclaimed_at_the_first_whole_second_after_expiry() {
    let mut cfg = base();
    cfg.appliance.conntrack.max_entries = 1;
    cfg.appliance.conntrack.max_entries_per_eni = 1;
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    t.advance_ns(SEC / 2); // W + 0.5 s
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "forward:up");
    t.advance_ns(30 * SEC + SEC / 10); // W + 30.6: expired, reclaimed at W + 31
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "drop:conntrack-full");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "forward:up");
    t.advance_ns(30 * SEC + SEC / 10); // W + 60.7, the entry (last W + 30.6) expired at W + 60.6
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "drop:conntrack-full");
    t.advance_ns(3 * SEC / 10 - 1); // W + 61.0 - 1 ns
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "drop:conntrack-full");
    t.advance_ns(1); // W + 61
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "forward:up");
}

/// 7.1 "Conntrack capacity accounting": a frame that needs entries at two ENIs needs
/// room for both.
#[test]
fn new_entries_at_two_enis_are_all_or_nothing() {
    let mut cfg = base();
    cfg.appliance.conntrack.max_entries = 3;
    cfg.appliance.conntrack.max_entries_per_eni = 2;
    a_to_c_allowed(&mut cfg);
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5001, 53)), "forward:pc");
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 5002, 53)), "drop:conntrack-full");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5003, 53)), "forward:up");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5004, 53)), "drop:conntrack-full");
}

/// 7.1 "Per-ENI conntrack share": MaxEntriesPerEni; timeout changes apply to
/// existing entries at once.
#[test]
fn per_eni_share_and_timeout_changes_apply_at_once() {
    let mut cfg = base();
    cfg.appliance.conntrack.max_entries = 10;
    cfg.appliance.conntrack.max_entries_per_eni = 1;
    for n in ["a", "b"] {
        sg(&mut cfg, n).ip_permissions_egress.push(perm("udp", Some(53), Some(53), "0.0.0.0/0"));
    }
    with_ct(&mut cfg, 0, None, Some(60), None);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "forward:up");
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5002, 53)), "drop:conntrack-full");
    assert_eq!(t.send("pa", &udp(&b(), "203.0.113.10", 5002, 53)), "forward:up");
    t.advance_secs(40);
    t.update(|c| {
        revoke_all(c);
        with_ct(c, 0, None, Some(30), None);
    });
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "reject:sg-egress");
}

/// 7.1 "Routing": a destination outside the sender's VPC goes to the uplink, even in
/// another VPC of the appliance; frames leave with the next hop's MAC.
#[test]
fn other_vpcs_are_reached_through_the_uplink() {
    let mut cfg = base();
    cfg.vpcs.push(Vpc { vpc_id: "vpc-00000002".into(), cidr_block: Some("10.1.0.0/16".into()), ..Default::default() });
    cfg.subnets.push(Subnet {
        subnet_id: "subnet-00000003".into(),
        vpc_id: "vpc-00000002".into(),
        cidr_block: "10.1.1.0/24".into(),
        ..Default::default()
    });
    cfg.network_interfaces.push(NetworkInterface {
        network_interface_id: "eni-0000000d".into(),
        subnet_id: "subnet-00000003".into(),
        vpc_id: "vpc-00000002".into(),
        mac_address: "02:00:00:00:03:0a".into(),
        private_ip_address: Some("10.1.1.10".into()),
        source_dest_check: true,
        ..Default::default()
    });
    cfg.appliance.ports[1].network_interface_ids.push("eni-0000000d".into());
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "10.1.1.10", 1, 2)), "forward:up");
    // and from the uplink, an ENI of either VPC is reachable
    let d = host("02:00:00:00:03:0a", "10.1.1.10");
    assert_eq!(t.send("pc", &udp(&d, "10.0.1.10", 1, 2)), "forward:up");
    assert_eq!(t.send("up", &udp(&ext(), "10.1.1.10", 1, 2)), "reject:sg-ingress");
}

/// 7.1 "VLAN tags": up to two tags accepted on input.
#[test]
fn vlan_tagged_frames_are_accepted() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("-1", None, None, "0.0.0.0/0"));
    let mut t = Pair::new(cfg);
    let f = udp(&a(), "203.0.113.10", 1, 2);
    let one = testkit::vlan_tag(&f, 10);
    let two = testkit::vlan_tag(&one, 20);
    assert_eq!(t.send("pa", &one), "forward:up");
    assert_eq!(t.send("pa", &two), "forward:up");
    assert_eq!(t.send("pa", &testkit::vlan_tag(&testkit::arp_request(&a(), "10.0.1.1".parse().unwrap()), 5)), "reply");
}

/// 3.1 / 3.2: NACLs are ordered, first match wins, per direction and IP family, and
/// are crossed only between subnets (section 0).
#[test]
fn nacls_first_match_per_family_between_subnets_only() {
    let mut cfg = base();
    open_inside(&mut cfg);
    sg(&mut cfg, "c").ip_permissions.push(perm("-1", None, None, "0.0.0.0/0"));
    sg(&mut cfg, "c").ip_permissions.push(perm("-1", None, None, "::/0"));
    nacl(
        &mut cfg,
        "subnet-00000001",
        vec![entry(100, true, "-1", "0.0.0.0/0", false), entry(100, false, "-1", "0.0.0.0/0", false)],
    );
    nacl(
        &mut cfg,
        "subnet-00000002",
        vec![
            entry(10, false, "6", "203.0.113.10/32", false),
            entry(20, false, "-1", "203.0.113.0/24", true),
            entry(30, false, "-1", "::/0", false),
            entry(40, false, "-1", "2001:db8::/32", true),
            entry(50, true, "-1", "0.0.0.0/0", true),
        ],
    );
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "10.0.1.20", 1, 2)), "forward:pa");
    assert_eq!(t.send("pa", &udp(&a(), "10.0.2.10", 1, 2)), "reject:nacl-egress");
    assert_eq!(t.send("pc", &udp(&c(), "10.0.1.10", 1, 2)), "reject:nacl-ingress");
    assert_eq!(t.send("up", &tcp(&ext(), "10.0.2.10", 1, 2, Flags::SYN)), "reject:nacl-ingress");
    assert_eq!(t.send("up", &udp(&ext(), "10.0.2.10", 1, 2)), "forward:pc");
    let x6 = host(GW, "2001:db8::7");
    assert_eq!(t.send("up", &udp(&x6, "2600:1f18:1:102::10", 1, 2)), "reject:nacl-ingress");
}

/// 1.1: protocol -1 and numbers other than tcp/udp/icmp/icmpv6 allow every port;
/// ICMP type/code with -1; icmpv6 without a range allows every type.
#[test]
fn sg_rule_fields_follow_section_1_1() {
    let mut cfg = base();
    let g = sg(&mut cfg, "a");
    g.ip_permissions_egress.push(perm("47", Some(10), Some(20), "0.0.0.0/0"));
    g.ip_permissions_egress.push(perm("6", Some(8000), Some(8010), "0.0.0.0/0"));
    g.ip_permissions_egress.push(perm("icmp", Some(8), Some(-1), "0.0.0.0/0"));
    g.ip_permissions_egress.push(perm("icmp", Some(3), Some(4), "0.0.0.0/0"));
    g.ip_permissions_egress.push(perm("icmpv6", None, None, "::/0"));
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &other(&a(), "203.0.113.10", 47)), "forward:up");
    assert_eq!(t.send("pa", &other(&a(), "203.0.113.10", 50)), "reject:sg-egress");
    assert_eq!(t.send("pa", &tcp(&a(), "203.0.113.10", 1, 8005, Flags::SYN)), "forward:up");
    assert_eq!(t.send("pa", &tcp(&a(), "203.0.113.10", 8005, 8011, Flags::SYN)), "reject:sg-egress");
    assert_eq!(t.send("pa", &echo(&a(), "203.0.113.10", 1, false)), "forward:up");
    assert_eq!(t.send("pa", &icmp(&a(), "203.0.113.10", 3, 4, [0; 4])), "forward:up");
    assert_eq!(t.send("pa", &icmp(&a(), "203.0.113.10", 3, 3, [0; 4])), "reject:sg-egress");
    assert_eq!(t.send("pa", &icmp(&a6(), "2001:db8::1", 2, 0, [0; 4])), "forward:up");
    assert_eq!(t.send("pa", &echo(&a6(), "2001:db8::1", 1, false)), "forward:up");
}

/// R8 of the oracle (the spec leaves it open): a later fragment takes the first
/// fragment's verdict but does not refresh the flow's conntrack entry.
#[test]
fn later_fragments_do_not_refresh_conntrack_entries() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "203.0.113.0/24"));
    let mut t = Pair::new(cfg);
    let big = testkit::udp(&a(), ip("203.0.113.10"), router(), 5000, 53, &[7u8; 100]);
    let f = testkit::fragment(&big, 32, 91);
    assert_eq!(t.send("pa", &f[0]), "forward:up");
    t.advance_secs(29);
    assert_eq!(t.send("pa", &f[1]), "forward:up");
    t.update(revoke_all);
    t.advance_ns(SEC + 1);
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5000)), "reject:sg-ingress");
}

/// 7.1 "Per-ENI conntrack share" ("timeout changes apply to existing entries at
/// once") read with "Conntrack capacity accounting" ("an expired entry stops
/// matching at once"): raised timeouts apply to live entries, but an entry that
/// already expired under the old ones stays expired even before it is reclaimed
/// (oracle reading R9).
#[test]
fn raised_timeouts_do_not_revive_expired_entries() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "203.0.113.0/24"));
    with_ct(&mut cfg, 0, None, Some(30), None);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5000, 53)), "forward:up");
    t.advance_ns(30 * SEC + SEC / 4); // expired, reclaimed only at the next whole second
    t.update(|c| {
        revoke_all(c);
        with_ct(c, 0, None, Some(60), None);
    });
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5000)), "reject:sg-ingress");
    // A live entry does get the raised timeout.
    let mut t = Pair::new(t.cfg.clone());
    t.update(|c| {
        sg(c, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "203.0.113.0/24"));
        with_ct(c, 0, None, Some(30), None);
    });
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5001, 53)), "forward:up");
    t.advance_ns(20 * SEC);
    t.update(|c| {
        revoke_all(c);
        with_ct(c, 0, None, Some(60), None);
    });
    t.advance_ns(20 * SEC); // 40 s idle: alive under the raised 60 s
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5001)), "forward:pa");
}

#[test]
fn reclaimed_entries_are_gone_whatever_the_timeouts() {
    let mut cfg = base();
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("udp", Some(53), Some(53), "203.0.113.0/24"));
    with_ct(&mut cfg, 0, None, Some(30), None);
    let mut t = Pair::new(cfg);
    assert_eq!(t.send("pa", &udp(&a(), "203.0.113.10", 5000, 53)), "forward:up");
    t.advance_ns(31 * SEC);
    assert_eq!(t.send("pa", &udp(&b(), "203.0.113.10", 5000, 53)), "reject:sg-egress"); // reclaims
    t.update(|c| {
        revoke_all(c);
        with_ct(c, 0, None, Some(60), None);
    });
    assert_eq!(t.send("up", &udp(&ext(), "10.0.1.10", 53, 5000)), "reject:sg-ingress");
}
