//! Mutation fuzzing of the parser and the whole pipeline, bounded in time:
//! `VPCGATE_FUZZ_SECS` (default 10) and `VPCGATE_FUZZ_SEED` (default: time) set it;
//! for a long run: `VPCGATE_FUZZ_SECS=3600 cargo test --release -p dataplane --test fuzz_pipeline`.
//!
//! Starting from well-formed frames of every kind, each round flips bits, sets
//! interesting values, truncates, extends and splices, then runs the frame through
//! the parser and a pipeline with real tables. Nothing may panic; a frame the parser
//! refuses must be dropped as malformed; frames are never forwarded longer than
//! they came in.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dataplane::addr::{Family, Ip, Mac, Prefix};
use dataplane::pipeline::{DropReason, Frame, Pipeline, PipelineConfig, Verdict};
use dataplane::policy::nacl::{Nacl, NaclDirection, NaclRule};
use dataplane::policy::sg::{SgDirection, SgMatch, SgRuleInfo};
use dataplane::tables::{self, CtLimits, CtTimeouts, Eni, EniId, FastMap, Tables};
use dataplane::testkit::{self, Flags, Host};
use dataplane::wire;
use rand::{Rng, SeedableRng};

fn router() -> Mac {
    Mac::parse("02:76:70:63:67:01").unwrap()
}

/// Two ENIs on two ports and an uplink; SGs allowing everything, so frames go deep.
fn tables() -> Tables {
    let any = |f| Prefix::any(f);
    let open = || {
        let rules = vec![SgRuleInfo { group_id: "sg-00000001".into(), rule_id: "sgr-1".into(), text: "all".into() }];
        let m = [
            SgMatch { rule: 0, proto: Some(6), keys: (0, 1000), peer: any(Family::V4) },
            SgMatch { rule: 0, proto: None, keys: (0, 65535), peer: any(Family::V6) },
        ];
        SgDirection::build(rules, &m)
    };
    let eni = |i: u32, ip4: u32, ip6: u128, mac: &str| Eni {
        id: format!("eni-0000000{i}"),
        key: EniId(i),
        vpc: 0,
        subnet: i as u16,
        port: Some(i as u16),
        mac: Mac::parse(mac).unwrap(),
        ipv4: vec![ip4],
        ipv6: vec![ip6],
        source_dest_check: true,
        timeouts: CtTimeouts::default(),
        sg_ingress: open().into(),
        sg_egress: open().into(),
        account_id: "1".into(),
        instance_id: None,
        flow_meta: Some(std::sync::Arc::new(flowlog::EniMeta {
            interface_id: format!("eni-0000000{i}"),
            account_id: "1".into(),
            vpc_id: "vpc-00000001".into(),
            subnet_id: "subnet-00000001".into(),
            instance_id: None,
            region: "us-east-1".into(),
            az_id: None,
            primary_ipv4: Some(std::net::Ipv4Addr::from(ip4)),
        })),
    };
    let nacl_rules = |egress: bool| {
        vec![
            NaclRule {
                rule_number: 10,
                allow: !egress,
                proto: Some(17),
                keys: (0, 100),
                cidr: any(Family::V4),
                text: String::new(),
            },
            NaclRule {
                rule_number: 20,
                allow: true,
                proto: None,
                keys: (0, 65535),
                cidr: any(Family::V4),
                text: String::new(),
            },
            NaclRule {
                rule_number: 30,
                allow: true,
                proto: None,
                keys: (0, 65535),
                cidr: any(Family::V6),
                text: String::new(),
            },
        ]
    };
    let nacl = Nacl {
        id: "acl-00000001".into(),
        ingress: NaclDirection::build(nacl_rules(false)),
        egress: NaclDirection::build(nacl_rules(true)),
    };
    let v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
    let enis = vec![
        Some(eni(0, 0xc612_010a, v6("2600::1:a"), "02:00:00:00:00:0a")),
        Some(eni(1, 0xc612_020a, v6("2600::2:a"), "02:00:00:00:00:0b")),
    ];
    let mut by_mac = FastMap::default();
    let mut by_ipv4 = FastMap::default();
    let mut by_ipv6 = FastMap::default();
    for e in enis.iter().flatten() {
        by_mac.insert(Tables::mac_key(e.port.unwrap(), e.mac), e.key);
        by_ipv4.insert(e.ipv4[0], e.key);
        by_ipv6.insert(e.ipv6[0], e.key);
    }
    let subnet = |i: u16, c4: &str| tables::Subnet {
        id: format!("subnet-0000000{i}"),
        vpc: 0,
        cidrs: vec![Prefix::new(Ip::from(c4.parse::<IpAddr>().unwrap()), 24)],
        nacl: 0,
    };
    let mut t = Tables {
        generation: 1,
        snapshot: Tables::next_snapshot(),
        timeouts_epoch: 0,
        published_at: 0,
        router_mac: router(),
        router_link_local: [0xfe80 << 112 | 1, Tables::eui64_link_local(router())],
        ports: vec![
            tables::Port { name: "a".into(), uplink: false, gateway_mac: Mac::default() },
            tables::Port { name: "b".into(), uplink: false, gateway_mac: Mac::default() },
            tables::Port { name: "up".into(), uplink: true, gateway_mac: Mac::parse("02:00:00:00:ff:01").unwrap() },
        ],
        uplink: Some(2),
        vpcs: vec![tables::Vpc {
            id: "vpc-00000001".into(),
            cidrs: vec![Prefix::new(Ip::v4(0xc612_0000), 16), Prefix::new(Ip::v6(v6("2600::")), 56)],
        }],
        subnets: vec![subnet(0, "198.18.1.0"), subnet(1, "198.18.2.0")],
        nacls: vec![nacl],
        enis,
        by_mac,
        by_ipv4,
        by_ipv6,
        ct_limits: CtLimits { max_entries_per_eni: 64 },
        vpc_ranges: Vec::new(),
        flow_interval_secs: 5,
    };
    t.index_vpcs();
    t
}

fn seeds() -> Vec<(u16, Vec<u8>)> {
    let a = Host::new("02:00:00:00:00:0a", "198.18.1.10");
    let b = Host::new("02:00:00:00:00:0b", "198.18.2.10");
    let a6 = Host::new("02:00:00:00:00:0a", "2600::1:a");
    let x = Host::new("02:00:00:00:ff:01", "198.19.0.1");
    let r = router();
    let big = testkit::udp(&a, b.ip, r, 5, 50, &[9; 200]);
    let mut out = vec![
        (0, testkit::tcp(&a, b.ip, r, 1000, 80, Flags::SYN, 1, 0, b"")),
        (1, testkit::tcp(&b, a.ip, r, 80, 1000, Flags::SYN_ACK, 1, 2, b"")),
        (0, testkit::udp(&a, b.ip, r, 53, 53, b"q")),
        (0, testkit::udp(&a6, "2600::2:a".parse().unwrap(), r, 53, 53, b"q")),
        (0, testkit::echo(&a, b.ip, r, 1, 1, false)),
        (2, testkit::echo(&x, a.ip, r, 1, 1, true)),
        (2, testkit::icmp_error(&x, a.ip, r, 3, 1, &testkit::tcp(&a, x.ip, r, 1, 2, Flags::SYN, 1, 0, b""))),
        (0, testkit::other(&a, b.ip, r, 47, b"gre")),
        (0, testkit::arp_request(&a, "198.18.1.1".parse().unwrap())),
        (0, testkit::neighbor_solicit(&Host::new("02:00:00:00:00:0a", "fe80::a"), "fe80::1".parse().unwrap())),
        (0, testkit::vlan_tag(&testkit::tcp(&a, x.ip, r, 1, 443, Flags::SYN, 1, 0, b""), 7)),
    ];
    out.extend(testkit::fragment(&big, 64, 9).into_iter().map(|f| (0, f)));
    out
}

const INTERESTING: [u8; 10] = [0, 1, 2, 4, 5, 0x0f, 0x40, 0x45, 0x7f, 0xff];

fn mutate(rng: &mut impl Rng, f: &mut Vec<u8>, seeds: &[(u16, Vec<u8>)]) {
    for _ in 0..rng.gen_range(1..6) {
        match rng.gen_range(0..7) {
            0 if !f.is_empty() => {
                let i = rng.gen_range(0..f.len());
                f[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !f.is_empty() => {
                let i = rng.gen_range(0..f.len());
                f[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            }
            2 if !f.is_empty() => {
                let n = rng.gen_range(0..f.len());
                f.truncate(n);
            }
            3 => f.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>())),
            4 if f.len() > 20 => {
                // overwrite a 16-bit length-like field in the IP header region
                let i = rng.gen_range(14..f.len() - 1);
                let v: u16 = [0, 1, 8, 20, 40, 0x7fff, 0xffff][rng.gen_range(0..7)];
                f[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            5 => {
                let other = &seeds[rng.gen_range(0..seeds.len())].1;
                let cut = rng.gen_range(0..=f.len().min(other.len()));
                f.truncate(cut);
                f.extend_from_slice(&other[cut.min(other.len())..]);
            }
            _ => {}
        }
    }
}

#[test]
fn fuzz_parser_and_pipeline() {
    let secs: u64 = std::env::var("VPCGATE_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("VPCGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("fuzz_parser_and_pipeline: seed {seed} for {secs} s (VPCGATE_FUZZ_SEED to replay)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let t = tables();
    let seeds = seeds();
    let mut p = Pipeline::new(PipelineConfig {
        conntrack_entries: 256,
        fragment_entries: 64,
        flow_entries: 256,
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut now = 1_000_000_000_000u64;
    let mut rounds = 0u64;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let (port, seed_frame) = &seeds[rng.gen_range(0..seeds.len())];
            let mut f = seed_frame.clone();
            mutate(&mut rng, &mut f, &seeds);
            f.truncate(2048);
            let port = if rng.gen_bool(0.9) { *port } else { rng.gen_range(0..4) };
            let parsed = wire::parse(&f);
            buf[..f.len()].copy_from_slice(&f);
            now += rng.gen_range(0..3_000_000_000);
            let o = p.process_frame(&t, &mut Frame { buf: &mut buf, len: f.len(), port, time: now }, &mut ());
            if parsed.is_err() {
                assert!(
                    matches!(o.verdict, Verdict::Drop(DropReason::Malformed(_))),
                    "seed {seed}: unparsable frame got {:?}",
                    o.verdict
                );
            }
            if let Verdict::Forward(_) = o.verdict {
                assert!(o.len <= f.len() && o.head + o.len <= buf.len(), "seed {seed}: forwarded frame grew");
            }
            rounds += 1;
        }
    }
    eprintln!(
        "fuzz_parser_and_pipeline: {rounds} frames, {} forwarded, {} dropped malformed",
        p.stats.forwarded, p.stats.dropped[0]
    );
    assert!(p.stats.forwarded > 0, "the fuzzer never got a frame through: the corpus is broken");
}
