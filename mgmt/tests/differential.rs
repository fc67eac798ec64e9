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
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(m: Option<[u8; 6]>) -> String {
    match m {
        Some(m) => m
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
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
    let mut h = guarded(&format!("{ctx}: generated config rejected"), || {
        real_system(sc.config.clone())
    });
    let mut o = Oracle::new(&sc.config);
    let mut n = 0usize;
    // `conntrack_allowance_available` per ENI after every frame (section 7), unless
    // VPCGATE_DIFF_CT=0.
    let ct_check = std::env::var("VPCGATE_DIFF_CT").map_or(true, |v| v != "0");
    let mut log = std::env::var("VPCGATE_DIFF_LOG")
        .ok()
        .map(|p| std::fs::File::create(p).unwrap());
    for (k, ev) in sc.events.iter().enumerate() {
        match ev {
            Event::Advance(ns) => h.now += ns,
            Event::Update { config, what } => {
                if let Some(log) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(log, "UPDATE {what}");
                }
                guarded(&format!("{ctx} event {k} ({what}): updated config rejected"), || {
                    h.update(|c| *c = (**config).clone())
                });
                o.set_config(config);
            }
            Event::Send { port, frame, what } => {
                let real = capture::send(&mut h, port, frame);
                let want = o.process(port, frame, h.now);
                let same = real.verdict == want.short()
                    && match &want {
                        Verdict::Forward { dst_mac, .. } => real.dst_mac == Some(*dst_mac),
                        _ => true,
                    };
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
                        .map(|e| {
                            format!(
                                "{}/{}",
                                h.pipeline.conntrack_available(&h.tables, e.key),
                                o.available(&e.id)
                            )
                        })
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
    Ok(n)
}

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
            Pair {
                h: real_system(cfg.clone()),
                o: Oracle::new(&cfg),
                cfg,
                log: Vec::new(),
            }
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
            self.o.set_config(&self.cfg);
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
                ipv6_addresses: vec![Ipv6Address {
                    ipv6_address: ip6.into(),
                    extra: Default::default(),
                }],
                groups: vec![GroupIdentifier {
                    group_id: format!("sg-0000000{n}"),
                    group_name: None,
                }],
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
    pub fn c6() -> Host {
        host(mac_of("c"), "2600:1f18:1:102::10")
    }
    pub fn ext() -> Host {
        host(GW, "203.0.113.10")
    }
    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub fn perm(proto: &str, from: Option<i64>, to: Option<i64>, cidr: &str) -> IpPermission {
        let mut p = IpPermission {
            ip_protocol: proto.into(),
            from_port: from,
            to_port: to,
            ..Default::default()
        };
        if cidr.starts_with("sg-") {
            p.user_id_group_pairs.push(UserIdGroupPair {
                group_id: Some(cidr.into()),
                ..Default::default()
            });
        } else if cidr.contains(':') {
            p.ipv6_ranges.push(Ipv6Range {
                cidr_ipv6: cidr.into(),
                description: None,
            });
        } else {
            p.ip_ranges.push(IpRange {
                cidr_ip: cidr.into(),
                description: None,
            });
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
}

use dataplane::testkit::Flags;
use mgmt::model::*;
use rows::*;

/// 7.1 "TCP handshake state": after a SYN-ACK, the next ACK without SYN in either
/// direction completes the handshake; a FIN in one direction only keeps the
/// established timeout. Frames refused before reaching an ENI change nothing there.
#[test]
fn tcp_handshake_completes_on_the_next_ack_either_direction() {
    let mut cfg = base();
    cfg.network_interfaces[0].connection_tracking_configuration = Some(ConnectionTrackingConfiguration {
        tcp_established_timeout: Some(120),
        ..Default::default()
    });
    sg(&mut cfg, "a").ip_permissions_egress.push(perm("tcp", Some(0), Some(65535), "203.0.113.0/24"));
    // the NACL of a's subnet refuses everything from the outside host
    cfg.network_acls.push(NetworkAcl {
        network_acl_id: "acl-0000000a".into(),
        vpc_id: "vpc-00000001".into(),
        is_default: false,
        entries: vec![
            NetworkAclEntry { rule_number: 100, protocol: "-1".into(), rule_action: "allow".into(), egress: true, cidr_block: Some("0.0.0.0/0".into()), ..Default::default() },
        ],
        associations: vec![NetworkAclAssociation { network_acl_association_id: "aclassoc-0000000a".into(), network_acl_id: "acl-0000000a".into(), subnet_id: "subnet-00000001".into() }],
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
