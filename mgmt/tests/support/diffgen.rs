//! Random, valid, EC2-shaped configs and traffic for the differential test: a
//! scenario is a config and a list of events (frames, clock advances, config
//! changes), all decided up front from a seed, so any scenario can be replayed.
//! Nothing here depends on a verdict.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::addr::Mac;
use dataplane::testkit::{self, Flags, Host};
use mgmt::model::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NS: u64 = 1_000_000_000;

pub enum Event {
    Send { port: String, frame: Vec<u8>, what: String },
    Advance(u64),
    Update { config: Box<Config>, what: String },
}

pub struct Scenario {
    pub config: Config,
    pub events: Vec<Event>,
}

// ---------------------------------------------------------------- addresses

#[derive(Clone, Debug)]
struct V4Net {
    base: u32,
    len: u8,
}

impl V4Net {
    fn text(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.len)
    }
    fn size(&self) -> u32 {
        1u32 << (32 - self.len)
    }
    fn addr(&self, off: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + off)
    }
}

fn v6_text(base: u128, len: u8) -> String {
    format!("{}/{}", Ipv6Addr::from(base), len)
}

fn canon_v4(ip: Ipv4Addr, len: u8) -> String {
    let m = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
    format!("{}/{}", Ipv4Addr::from(u32::from(ip) & m), len)
}

fn canon_v6(ip: Ipv6Addr, len: u8) -> String {
    let m = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
    format!("{}/{}", Ipv6Addr::from(u128::from(ip) & m), len)
}

const EXT_V4: [&str; 6] = ["203.0.113.10", "203.0.113.77", "198.51.100.5", "8.8.8.8", "1.1.1.1", "100.64.5.6"];
const EXT_V6: [&str; 3] = ["2001:db8:1::10", "2001:db8:1::77", "2a00:1450:4001::5"];

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

// ---------------------------------------------------------------- topology

#[derive(Clone, Debug)]
struct SubnetInfo {
    id: String,
    vpc: usize,
    v4: V4Net,
    v6: Option<u128>,
}

#[derive(Clone, Debug)]
struct EniInfo {
    id: String,
    subnet: usize,
    vpc: usize,
    mac: [u8; 6],
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    port: String,
    tcp_est: u64,
    udp: u64,
    udp_stream: u64,
}

#[derive(Clone, Debug)]
struct Topo {
    vpc_ids: Vec<String>,
    vpc_v4: Vec<V4Net>,
    vpc_v6: Vec<Option<u128>>,
    subnets: Vec<SubnetInfo>,
    enis: Vec<EniInfo>,
    uplink: Option<String>,
    gateway: [u8; 6],
    router: [u8; 6],
    /// SG ids per VPC (custom and an explicit `default` if any).
    sgs: Vec<Vec<String>>,
    /// Unowned addresses inside the VPCs (reserved .1-.3, free hosts, broadcast).
    unowned: Vec<IpAddr>,
}

struct Gen {
    rng: ChaCha8Rng,
    serial: u64,
}

impl Gen {
    fn id(&mut self, prefix: &str) -> String {
        self.serial += 1;
        if self.rng.gen_bool(0.5) {
            format!("{prefix}-{:017x}", 0x0a1b_0000_0000u64 + self.serial)
        } else {
            format!("{prefix}-{:08x}", 0x1000_0000u64 + self.serial)
        }
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        v.choose(&mut self.rng).expect("non-empty")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }
}

// ---------------------------------------------------------------- config

/// Protocol, ports and a canonical form for duplicate detection.
struct PermShape {
    proto: String,
    from: Option<i64>,
    to: Option<i64>,
    canon: (i64, i64, i64),
    family: Option<bool>, // Some(true) = IPv6 peers only
}

const PORT_POOL: [u16; 12] = [22, 80, 443, 53, 8080, 3306, 5000, 123, 40000, 50000, 33434, 9];

fn perm_shape(g: &mut Gen) -> PermShape {
    let roll = g.rng.gen_range(0..100);
    let ports = |g: &mut Gen| -> (i64, i64) {
        match g.rng.gen_range(0..10) {
            0 => (0, 65535),
            1 => (1024, 65535),
            2 => (32768, 61000),
            3 => {
                let a = *g.pick(&PORT_POOL) as i64;
                (a, (a + g.rng.gen_range(0..20)).min(65535))
            }
            4 => (5000, 5010),
            5 => {
                // ranges whose ends sit right next to a port traffic uses
                let a = *g.pick(&PORT_POOL) as i64;
                match g.rng.gen_range(0..4) {
                    0 => ((a - 1).max(0), (a + 1).min(65535)),
                    1 => ((a + 1).min(65535), (a + 5).min(65535)),
                    2 => (a, 65535),
                    _ => (1, (a - 1).max(1)),
                }
            }
            _ => {
                let a = *g.pick(&PORT_POOL) as i64;
                (a, a)
            }
        }
    };
    let num = g.chance(0.1);
    if roll < 32 {
        let (a, b) = ports(g);
        PermShape {
            proto: if num { "6" } else { "tcp" }.into(),
            from: Some(a),
            to: Some(b),
            canon: (6, a, b),
            family: None,
        }
    } else if roll < 50 {
        let (a, b) = ports(g);
        PermShape {
            proto: if num { "17" } else { "udp" }.into(),
            from: Some(a),
            to: Some(b),
            canon: (17, a, b),
            family: None,
        }
    } else if roll < 62 {
        let (t, c) =
            *g.pick(&[(-1, -1), (8, -1), (8, 0), (0, -1), (3, -1), (3, 4), (11, 0), (13, -1), (12, -1), (5, 1)]);
        PermShape {
            proto: if num { "1" } else { "icmp" }.into(),
            from: Some(t),
            to: Some(c),
            canon: (1, t, c),
            family: Some(false),
        }
    } else if roll < 72 {
        let tc = *g.pick(&[
            None,
            Some((-1, -1)),
            Some((128, -1)),
            Some((129, 0)),
            Some((1, -1)),
            Some((2, 0)),
            Some((3, -1)),
            Some((4, -1)),
        ]);
        let (t, c) = tc.unwrap_or((-1, -1));
        PermShape {
            proto: if num { "58" } else { "icmpv6" }.into(),
            from: tc.map(|x| x.0),
            to: tc.map(|x| x.1),
            canon: (58, t, c),
            family: Some(true),
        }
    } else if roll < 90 {
        PermShape { proto: "-1".into(), from: None, to: None, canon: (-1, 0, 0), family: None }
    } else {
        let n = *g.pick(&[47i64, 50, 132]);
        PermShape { proto: n.to_string(), from: None, to: None, canon: (n, 0, 0), family: None }
    }
}

fn v4_peer(g: &mut Gen, t: &Topo) -> String {
    match g.rng.gen_range(0..12) {
        0..=2 => "0.0.0.0/0".into(),
        3 => t.vpc_v4[g.rng.gen_range(0..t.vpc_v4.len())].text(),
        4 => t.subnets[g.rng.gen_range(0..t.subnets.len())].v4.text(),
        5 | 6 => {
            let e = g.pick(&t.enis).clone();
            format!("{}/32", g.pick(&e.v4))
        }
        7 => format!("{}/32", g.pick(&EXT_V4)),
        8 => {
            let ip: Ipv4Addr = g.pick(&EXT_V4).parse().unwrap();
            canon_v4(ip, 24)
        }
        9 => {
            let e = g.pick(&t.enis).clone();
            let ip = *g.pick(&e.v4);
            let len = g.rng.gen_range(8..=30);
            canon_v4(ip, len)
        }
        10 => {
            let ip: Ipv4Addr = g.pick(&EXT_V4).parse().unwrap();
            let len = g.rng.gen_range(1..=32);
            canon_v4(ip, len)
        }
        _ => "198.51.100.0/22".into(),
    }
}

/// Any prefix length around an ENI's or an outside IPv6 address.
fn v6_odd_peer(g: &mut Gen, t: &Topo) -> String {
    let enis6: Vec<Ipv6Addr> = t.enis.iter().flat_map(|e| e.v6.clone()).collect();
    let ip: Ipv6Addr = match enis6.choose(&mut g.rng) {
        Some(x) if g.chance(0.7) => *x,
        _ => g.pick(&EXT_V6).parse().unwrap(),
    };
    let len = g.rng.gen_range(1..=128);
    canon_v6(ip, len)
}

fn v6_peer(g: &mut Gen, t: &Topo) -> String {
    let enis6: Vec<Ipv6Addr> = t.enis.iter().flat_map(|e| e.v6.clone()).collect();
    match g.rng.gen_range(0..11) {
        9 | 10 => v6_odd_peer(g, t),
        0..=2 => "::/0".into(),
        3 => match t.vpc_v6.iter().flatten().next() {
            Some(b) => v6_text(*b, 56),
            None => "::/0".into(),
        },
        4 => match t.subnets.iter().filter_map(|s| s.v6).next() {
            Some(b) => v6_text(b, 64),
            None => "2001:db8::/32".into(),
        },
        5 | 6 if !enis6.is_empty() => format!("{}/128", g.pick(&enis6)),
        7 => format!("{}/128", g.pick(&EXT_V6)),
        _ => {
            let ip: Ipv6Addr = g.pick(&EXT_V6).parse().unwrap();
            canon_v6(ip, 48)
        }
    }
}

/// Adds one random rule to `perms` (as a new permission) unless it duplicates one.
fn add_rule(
    g: &mut Gen,
    t: &Topo,
    vpc: usize,
    self_id: &str,
    perms: &mut Vec<IpPermission>,
    seen: &mut HashSet<(i64, i64, i64, String)>,
) -> Option<String> {
    let s = perm_shape(g);
    let mut p = IpPermission { ip_protocol: s.proto.clone(), from_port: s.from, to_port: s.to, ..Default::default() };
    let npeers = g.rng.gen_range(1..=2);
    let mut what = Vec::new();
    for _ in 0..npeers {
        let kind = g.rng.gen_range(0..10);
        let (peer, key) = if kind < 2 {
            // group reference, self-reference included
            let mut cands = t.sgs[vpc].clone();
            cands.push(self_id.to_string());
            let gid = g.pick(&cands).clone();
            (2, gid)
        } else {
            let v6 = match s.family {
                Some(f) => f,
                None => kind >= 8,
            };
            if v6 {
                (1, v6_peer(g, t))
            } else {
                (0, v4_peer(g, t))
            }
        };
        let k = (s.canon.0, s.canon.1, s.canon.2, key.clone());
        if !seen.insert(k) {
            continue;
        }
        match peer {
            0 => p.ip_ranges.push(IpRange { cidr_ip: uncanonical(g, &key), description: None }),
            1 => p.ipv6_ranges.push(Ipv6Range { cidr_ipv6: uncanonical(g, &key), description: None }),
            _ => p.user_id_group_pairs.push(UserIdGroupPair { group_id: Some(key.clone()), ..Default::default() }),
        }
        what.push(key);
    }
    if what.is_empty() {
        return None;
    }
    let desc = format!("{} {:?}-{:?} {}", p.ip_protocol, p.from_port, p.to_port, what.join(","));
    perms.push(p);
    Some(desc)
}

/// Sometimes writes a block with host bits set (`10.0.1.5/24`): AWS canonicalises it
/// (1.1), and so must everyone reading the config.
fn uncanonical(g: &mut Gen, cidr: &str) -> String {
    let (a, l) = cidr.split_once('/').unwrap();
    let len: u32 = l.parse().unwrap();
    if !g.chance(0.1) || len == 0 {
        return cidr.to_string();
    }
    match a.parse::<IpAddr>().unwrap() {
        IpAddr::V4(x) if len < 32 => {
            let host = g.rng.gen::<u32>() & (u32::MAX >> len);
            format!("{}/{len}", Ipv4Addr::from(u32::from(x) | host))
        }
        IpAddr::V6(x) if len < 128 => {
            let host = g.rng.gen::<u128>() & (u128::MAX >> len);
            format!("{}/{len}", Ipv6Addr::from(u128::from(x) | host))
        }
        _ => cidr.to_string(),
    }
}

fn canonical(cidr: &str) -> String {
    let (a, l) = cidr.split_once('/').unwrap();
    let len: u8 = l.parse().unwrap();
    match a.parse::<IpAddr>().unwrap() {
        IpAddr::V4(x) => canon_v4(x, len),
        IpAddr::V6(x) => canon_v6(x, len),
    }
}

fn rule_keys(perms: &[IpPermission]) -> HashSet<(i64, i64, i64, String)> {
    let mut out = HashSet::new();
    for p in perms {
        let n: i64 = match p.ip_protocol.as_str() {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" => 58,
            x => x.parse().unwrap(),
        };
        let canon = match n {
            6 | 17 | 1 | 58 => (n, p.from_port.unwrap_or(-1), p.to_port.unwrap_or(-1)),
            _ => (n, 0, 0),
        };
        for r in &p.ip_ranges {
            out.insert((canon.0, canon.1, canon.2, canonical(&r.cidr_ip)));
        }
        for r in &p.ipv6_ranges {
            out.insert((canon.0, canon.1, canon.2, canonical(&r.cidr_ipv6)));
        }
        for r in &p.user_id_group_pairs {
            out.insert((canon.0, canon.1, canon.2, r.group_id.clone().unwrap()));
        }
    }
    out
}

fn random_nacl_entry(g: &mut Gen, t: &Topo, egress: bool, number: i64, v6_ok: bool) -> NetworkAclEntry {
    let v6 = v6_ok && g.chance(0.3);
    let cidr = if v6 { v6_peer(g, t) } else { v4_peer(g, t) };
    let roll = g.rng.gen_range(0..100);
    let (protocol, port_range, icmp) = if roll < 30 {
        ("-1".to_string(), None, None)
    } else if roll < 55 || roll < 70 {
        let proto = if roll < 55 { "6" } else { "17" };
        let (a, b) = match g.rng.gen_range(0..6) {
            0 => (0, 65535),
            1 => (1024, 65535),
            2 => (32768, 61000),
            _ => {
                let a = *g.pick(&PORT_POOL) as i64;
                (a, a)
            }
        };
        (proto.to_string(), Some(PortRange { from: Some(a), to: Some(b) }), None)
    } else if roll < 85 {
        let (t, c) =
            *g.pick(&[(-1, -1), (8, -1), (0, 0), (3, -1), (3, 4), (11, -1), (128, -1), (129, 0), (2, 0), (1, -1)]);
        let proto = if v6 { "58" } else { "1" };
        (proto.to_string(), None, Some(IcmpTypeCode { r#type: Some(t), code: Some(c) }))
    } else if roll < 90 && !v6 {
        // 58 with an IPv4 block: all of protocol 58.
        ("58".to_string(), None, None)
    } else {
        (g.pick(&["47", "50", "132"]).to_string(), None, None)
    };
    let cidr = uncanonical(g, &cidr);
    let (cidr_block, ipv6_cidr_block) = if v6 { (None, Some(cidr)) } else { (Some(cidr), None) };
    NetworkAclEntry {
        rule_number: number,
        protocol,
        rule_action: if g.chance(0.65) { "allow" } else { "deny" }.into(),
        egress,
        cidr_block,
        ipv6_cidr_block,
        port_range,
        icmp_type_code: icmp,
    }
}

fn free_rule_number(g: &mut Gen, used: &HashSet<(i64, bool)>, egress: bool) -> i64 {
    loop {
        let n = match g.rng.gen_range(0..3) {
            0 => *g.pick(&[10i64, 50, 90, 99, 100, 101, 110, 120, 130, 200, 300]),
            1 => g.rng.gen_range(1..=500),
            _ => g.rng.gen_range(1..=32766),
        };
        if !used.contains(&(n, egress)) {
            return n;
        }
    }
}

fn gen_config(g: &mut Gen) -> (Config, Topo) {
    let nvpc = if g.chance(0.3) { 2 } else { 1 };
    let mut cfg = Config::default();
    let mut topo = Topo {
        vpc_ids: vec![],
        vpc_v4: vec![],
        vpc_v6: vec![],
        subnets: vec![],
        enis: vec![],
        uplink: None,
        gateway: [2, 0, 0, 0, 0xff, 1],
        router: [2, 0x76, 0x70, 0x63, 0x67, 1],
        sgs: vec![],
        unowned: vec![],
    };
    if g.chance(0.3) {
        topo.router = [2, 0xaa, g.rng.gen(), g.rng.gen(), g.rng.gen(), 1];
    }
    if g.chance(0.3) {
        topo.gateway = [2, 0xbb, g.rng.gen(), g.rng.gen(), g.rng.gen(), 2];
    }
    for first_octet in [10u32, 172, 192].into_iter().take(nvpc) {
        let base = match first_octet {
            10 => (10u32 << 24) | (g.rng.gen_range(0..=255u32) << 16),
            172 => (172u32 << 24) | ((16 + g.rng.gen_range(0..16u32)) << 16),
            _ => (192u32 << 24) | (168 << 16),
        };
        let net = V4Net { base, len: 16 };
        let id = g.id("vpc");
        let v6 = if g.chance(0.6) {
            Some((0x2600_1f18u128 << 96) | ((g.rng.gen::<u16>() as u128) << 80) | ((g.rng.gen::<u8>() as u128) << 72))
        } else {
            None
        };
        cfg.vpcs.push(Vpc {
            vpc_id: id.clone(),
            cidr_block: Some(net.text()),
            cidr_block_association_set: vec![CidrAssociation { cidr_block: net.text(), extra: Default::default() }],
            ipv6_cidr_block_association_set: v6
                .map(|b| vec![Ipv6CidrAssociation { ipv6_cidr_block: v6_text(b, 56), extra: Default::default() }])
                .unwrap_or_default(),
            ..Default::default()
        });
        topo.vpc_ids.push(id);
        topo.vpc_v4.push(net);
        topo.vpc_v6.push(v6);
    }
    // Subnets: 2-4, each VPC at least one.
    let nsub = g.rng.gen_range(2..=4).max(nvpc);
    let mut used_third: HashSet<(usize, u32)> = HashSet::new();
    for s in 0..nsub {
        let vpc = if s < nvpc { s } else { g.rng.gen_range(0..nvpc) };
        let third = loop {
            let t = g.rng.gen_range(0..=255u32);
            if used_third.insert((vpc, t)) {
                break t;
            }
        };
        let small = g.chance(0.2);
        let v4 = V4Net { base: topo.vpc_v4[vpc].base | (third << 8), len: if small { 26 } else { 24 } };
        let v6 = match topo.vpc_v6[vpc] {
            Some(b) if g.chance(0.8) => Some(b | ((third as u128 & 0xff) << 64)),
            _ => None,
        };
        let id = g.id("subnet");
        cfg.subnets.push(Subnet {
            subnet_id: id.clone(),
            vpc_id: topo.vpc_ids[vpc].clone(),
            cidr_block: v4.text(),
            ipv6_cidr_block_association_set: v6
                .map(|b| vec![Ipv6CidrAssociation { ipv6_cidr_block: v6_text(b, 64), extra: Default::default() }])
                .unwrap_or_default(),
            ..Default::default()
        });
        topo.subnets.push(SubnetInfo { id, vpc, v4, v6 });
    }
    // ENIs.
    let neni = g.rng.gen_range(3..=7);
    let mut used_ip: HashSet<IpAddr> = HashSet::new();
    let nports = g.rng.gen_range(2..=4).min(neni);
    for k in 0..neni {
        let subnet = if k < topo.subnets.len() { k } else { g.rng.gen_range(0..topo.subnets.len()) };
        let sn = topo.subnets[subnet].clone();
        let mut v4 = Vec::new();
        for _ in 0..g.rng.gen_range(1..=3) {
            let ip = loop {
                let off = g.rng.gen_range(4..sn.v4.size() - 1);
                let ip = sn.v4.addr(off);
                if used_ip.insert(IpAddr::V4(ip)) {
                    break ip;
                }
            };
            v4.push(ip);
        }
        let mut v6 = Vec::new();
        if let Some(b) = sn.v6 {
            for _ in 0..g.rng.gen_range(0..=2) {
                let ip = Ipv6Addr::from(b | (g.rng.gen::<u64>() as u128 | 0x1000));
                if used_ip.insert(IpAddr::V6(ip)) {
                    v6.push(ip);
                }
            }
        }
        let mac = [2, 0, 0x5e, g.rng.gen(), k as u8, 0x10 + k as u8];
        let ct = if g.chance(0.5) {
            Some(ConnectionTrackingConfiguration {
                tcp_established_timeout: g.chance(0.7).then(|| *g.pick(&[60i64, 61, 90, 120, 350, 3600, 432000])),
                udp_timeout: g.chance(0.7).then(|| *g.pick(&[30i64, 31, 45, 60])),
                udp_stream_timeout: g.chance(0.7).then(|| *g.pick(&[60i64, 90, 179, 180])),
            })
        } else {
            None
        };
        let id = g.id("eni");
        let port = format!("p{}", k % nports);
        topo.enis.push(EniInfo {
            id: id.clone(),
            subnet,
            vpc: sn.vpc,
            mac,
            v4: v4.clone(),
            v6: v6.clone(),
            port,
            tcp_est: ct.and_then(|c| c.tcp_established_timeout).unwrap_or(432000) as u64,
            udp: ct.and_then(|c| c.udp_timeout).unwrap_or(30) as u64,
            udp_stream: ct.and_then(|c| c.udp_stream_timeout).unwrap_or(180) as u64,
        });
        cfg.network_interfaces.push(NetworkInterface {
            network_interface_id: id,
            subnet_id: sn.id.clone(),
            vpc_id: topo.vpc_ids[sn.vpc].clone(),
            mac_address: if g.chance(0.2) { mac_text(mac).to_uppercase() } else { mac_text(mac) },
            private_ip_address: Some(v4[0].to_string()),
            private_ip_addresses: v4
                .iter()
                .enumerate()
                .map(|(i, a)| PrivateIpAddress {
                    private_ip_address: a.to_string(),
                    primary: i == 0,
                    extra: Default::default(),
                })
                .collect(),
            ipv6_addresses: v6
                .iter()
                .map(|a| Ipv6Address { ipv6_address: a.to_string(), extra: Default::default() })
                .collect(),
            groups: vec![],
            source_dest_check: !g.chance(0.2),
            connection_tracking_configuration: ct,
            ..Default::default()
        });
    }
    // Unowned VPC addresses.
    for s in &topo.subnets {
        for off in [1, 2, 3, s.v4.size() - 1] {
            topo.unowned.push(IpAddr::V4(s.v4.addr(off)));
        }
        for _ in 0..2 {
            let ip = IpAddr::V4(s.v4.addr(g.rng.gen_range(4..s.v4.size() - 1)));
            if !used_ip.contains(&ip) {
                topo.unowned.push(ip);
            }
        }
        if let Some(b) = s.v6 {
            topo.unowned.push(IpAddr::V6(Ipv6Addr::from(b | 0xdead_0001)));
        }
    }
    for v in &topo.vpc_v4 {
        // outside every subnet but inside the VPC
        topo.unowned.push(IpAddr::V4(v.addr(0xfffe - 1)));
    }

    // Security groups.
    let raise = g.chance(0.1);
    // now and then far past AWS's quotas: hundreds of overlapping rules per ENI
    let big = raise && g.chance(0.4);
    for v in 0..nvpc {
        let n = g.rng.gen_range(2..=4);
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(g.id("sg"));
        }
        let explicit_default = g.chance(0.4);
        if explicit_default {
            ids.push(g.id("sg"));
        }
        topo.sgs.push(ids.clone());
        for (i, id) in ids.iter().enumerate() {
            let is_default = explicit_default && i == ids.len() - 1;
            let mut sg = SecurityGroup {
                group_id: id.clone(),
                group_name: if is_default { "default".into() } else { format!("grp-{i}") },
                description: "generated".into(),
                vpc_id: topo.vpc_ids[v].clone(),
                ..Default::default()
            };
            let mut seen_in = HashSet::new();
            let mut seen_out = HashSet::new();
            if is_default && g.chance(0.5) {
                // what AWS creates
                sg.ip_permissions.push(IpPermission {
                    ip_protocol: "-1".into(),
                    user_id_group_pairs: vec![UserIdGroupPair { group_id: Some(id.clone()), ..Default::default() }],
                    ..Default::default()
                });
                let mut out = IpPermission {
                    ip_protocol: "-1".into(),
                    ip_ranges: vec![IpRange { cidr_ip: "0.0.0.0/0".into(), description: None }],
                    ..Default::default()
                };
                if topo.vpc_v6[v].is_some() {
                    out.ipv6_ranges.push(Ipv6Range { cidr_ipv6: "::/0".into(), description: None });
                }
                sg.ip_permissions_egress.push(out);
            } else {
                let (nin, nout) = if big {
                    (g.rng.gen_range(150..400), g.rng.gen_range(50..200))
                } else if raise {
                    (g.rng.gen_range(20..70), g.rng.gen_range(5..30))
                } else {
                    (g.rng.gen_range(0..7), g.rng.gen_range(0..5))
                };
                for _ in 0..nin {
                    add_rule(g, &topo, v, id, &mut sg.ip_permissions, &mut seen_in);
                }
                if g.chance(0.6) {
                    // the custom SG default: all to 0.0.0.0/0
                    seen_out.insert((-1, 0, 0, "0.0.0.0/0".to_string()));
                    sg.ip_permissions_egress.push(IpPermission {
                        ip_protocol: "-1".into(),
                        ip_ranges: vec![IpRange { cidr_ip: "0.0.0.0/0".into(), description: None }],
                        ..Default::default()
                    });
                }
                for _ in 0..nout {
                    add_rule(g, &topo, v, id, &mut sg.ip_permissions_egress, &mut seen_out);
                }
            }
            cfg.security_groups.push(sg);
        }
    }
    for (k, e) in topo.enis.iter().enumerate() {
        let groups = random_groups(g, &topo, e.vpc);
        cfg.network_interfaces[k].groups = groups;
    }

    // NACLs.
    for v in 0..nvpc {
        let v6 = topo.vpc_v6[v].is_some();
        let subnets: Vec<usize> = (0..topo.subnets.len()).filter(|&s| topo.subnets[s].vpc == v).collect();
        let ncustom = g.rng.gen_range(0..=2);
        let mut assoc_free: Vec<usize> = subnets.clone();
        assoc_free.shuffle(&mut g.rng);
        let mut nacls = Vec::new();
        for c in 0..ncustom + 1 {
            let is_default = c == ncustom;
            if is_default && g.chance(0.4) {
                break; // no default NACL in the document: the oracle and vpcgate make it
            }
            let mut acl = NetworkAcl {
                network_acl_id: g.id("acl"),
                vpc_id: topo.vpc_ids[v].clone(),
                is_default,
                ..Default::default()
            };
            let aws_default = is_default && g.chance(0.5);
            for egress in [false, true] {
                let mut used = HashSet::new();
                if aws_default {
                    acl.entries.push(NetworkAclEntry {
                        rule_number: 100,
                        protocol: "-1".into(),
                        rule_action: "allow".into(),
                        egress,
                        cidr_block: Some("0.0.0.0/0".into()),
                        ..Default::default()
                    });
                    if v6 {
                        acl.entries.push(NetworkAclEntry {
                            rule_number: 101,
                            protocol: "-1".into(),
                            rule_action: "allow".into(),
                            egress,
                            ipv6_cidr_block: Some("::/0".into()),
                            ..Default::default()
                        });
                    }
                } else {
                    let n = if raise { g.rng.gen_range(5..30) } else { g.rng.gen_range(0..8) };
                    for _ in 0..n {
                        let num = free_rule_number(g, &used, egress);
                        used.insert((num, egress));
                        acl.entries.push(random_nacl_entry(g, &topo, egress, num, v6));
                    }
                    if g.chance(0.75) {
                        let num = loop {
                            let n = g.rng.gen_range(1000..=32766);
                            if !used.contains(&(n, egress)) {
                                break n;
                            }
                        };
                        used.insert((num, egress));
                        acl.entries.push(NetworkAclEntry {
                            rule_number: num,
                            protocol: "-1".into(),
                            rule_action: "allow".into(),
                            egress,
                            cidr_block: Some("0.0.0.0/0".into()),
                            ..Default::default()
                        });
                        if v6 {
                            let num6 = loop {
                                let n = g.rng.gen_range(1000..=32766);
                                if !used.contains(&(n, egress)) {
                                    break n;
                                }
                            };
                            used.insert((num6, egress));
                            acl.entries.push(NetworkAclEntry {
                                rule_number: num6,
                                protocol: "-1".into(),
                                rule_action: "allow".into(),
                                egress,
                                ipv6_cidr_block: Some("::/0".into()),
                                ..Default::default()
                            });
                        }
                    }
                }
                if g.chance(0.3) {
                    acl.entries.push(NetworkAclEntry {
                        rule_number: 32767,
                        protocol: "-1".into(),
                        rule_action: "deny".into(),
                        egress,
                        cidr_block: Some("0.0.0.0/0".into()),
                        ..Default::default()
                    });
                    if v6 {
                        acl.entries.push(NetworkAclEntry {
                            rule_number: 32768,
                            protocol: "-1".into(),
                            rule_action: "deny".into(),
                            egress,
                            ipv6_cidr_block: Some("::/0".into()),
                            ..Default::default()
                        });
                    }
                }
            }
            // associations: custom NACLs take some subnets; the default may list the rest
            if !is_default {
                let take = g.rng.gen_range(0..=assoc_free.len().min(2));
                for _ in 0..take {
                    let s = assoc_free.pop().unwrap();
                    acl.associations.push(NetworkAclAssociation {
                        network_acl_association_id: g.id("aclassoc"),
                        network_acl_id: acl.network_acl_id.clone(),
                        subnet_id: topo.subnets[s].id.clone(),
                    });
                }
            } else if g.chance(0.5) {
                for &s in &assoc_free {
                    acl.associations.push(NetworkAclAssociation {
                        network_acl_association_id: g.id("aclassoc"),
                        network_acl_id: acl.network_acl_id.clone(),
                        subnet_id: topo.subnets[s].id.clone(),
                    });
                }
            }
            nacls.push(acl);
        }
        cfg.network_acls.extend(nacls);
    }

    // Ports.
    // now and then an ENI that no port lists (unreachable)
    let portless = if g.chance(0.05) { Some(topo.enis[topo.enis.len() - 1].id.clone()) } else { None };
    if let Some(id) = &portless {
        for e in topo.enis.iter_mut() {
            if &e.id == id {
                e.port = "(none)".into();
            }
        }
    }
    for p in 0..nports {
        let name = format!("p{p}");
        let ids = topo.enis.iter().filter(|e| e.port == name).map(|e| e.id.clone()).collect();
        cfg.appliance.ports.push(PortConfig {
            name: name.clone(),
            interface: format!("vg-{name}"),
            network_interface_ids: ids,
            uplink: false,
            gateway_mac: None,
        });
    }
    if g.chance(0.85) {
        cfg.appliance.ports.push(PortConfig {
            name: "uplink".into(),
            interface: "vg-uplink".into(),
            network_interface_ids: vec![],
            uplink: true,
            gateway_mac: Some(mac_text(topo.gateway)),
        });
        topo.uplink = Some("uplink".into());
    }
    cfg.appliance.router_mac = mac_text(topo.router);
    if g.chance(0.25) {
        let max = g.rng.gen_range(2..=40);
        cfg.appliance.conntrack.max_entries = max;
        cfg.appliance.conntrack.max_entries_per_eni = g.rng.gen_range(1..=max);
    }
    if raise {
        cfg.appliance.quotas.rules_per_security_group = if big { 1000 } else { 100 };
        cfg.appliance.quotas.network_acl_entries_per_acl = 40;
    }
    (cfg, topo)
}

fn random_groups(g: &mut Gen, t: &Topo, vpc: usize) -> Vec<GroupIdentifier> {
    if g.chance(0.2) {
        return vec![];
    }
    let mut c = t.sgs[vpc].clone();
    c.shuffle(&mut g.rng);
    let n = g.rng.gen_range(1..=3).min(c.len());
    c.truncate(n);
    c.into_iter().map(|id| GroupIdentifier { group_id: id, group_name: None }).collect()
}

// ---------------------------------------------------------------- traffic

#[derive(Clone, Debug)]
struct Ep {
    port: Option<String>,
    mac: [u8; 6],
    ip: IpAddr,
    /// ENI index in the topology.
    eni: Option<usize>,
}

impl Ep {
    fn host(&self) -> Host {
        Host { mac: Mac(self.mac), ip: self.ip }
    }
    fn label(&self) -> String {
        match self.eni {
            Some(_) => format!("{}", self.ip),
            None => format!("{}(ext)", self.ip),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    Echo,
    Timestamp,
    Other(u8),
}

#[derive(Clone, Debug)]
enum Step {
    Tcp(bool, Flags, usize),
    Udp(bool, usize),
    Icmp(bool, u8),
    Other(bool),
}

struct Flow {
    n: usize,
    a: Ep,
    b: Ep,
    proto: Proto,
    sport: u16,
    dport: u16,
    id: u16,
    steps: Vec<Step>,
    next: usize,
    last: u64,
    seq_a: u32,
    seq_b: u32,
    /// Frames sent so far (untagged), with direction, for ICMP errors to quote.
    sent: Vec<(bool, Vec<u8>)>,
}

struct Traffic<'a> {
    g: &'a mut Gen,
    topo: Topo,
    cfg: Config,
    events: Vec<Event>,
    now: u64,
    sends: usize,
    flows: Vec<Flow>,
    flow_serial: usize,
    frag_id: u32,
    timeout_changes: bool,
}

fn tcp_script(g: &mut Gen) -> Vec<Step> {
    use Step::Tcp as T;
    let data = |g: &mut Gen| g.rng.gen_range(0..200usize);
    match g.rng.gen_range(0..9) {
        0..=2 => {
            let mut s = vec![T(true, Flags::SYN, 0), T(false, Flags::SYN_ACK, 0), T(true, Flags::ACK, 0)];
            for _ in 0..g.rng.gen_range(1..5) {
                let d = g.chance(0.5);
                s.push(T(d, Flags::PSH_ACK, data(g) + 1));
            }
            s.push(T(true, Flags::FIN_ACK, 0));
            s.push(T(false, Flags::FIN_ACK, 0));
            s.push(T(true, Flags::ACK, 0));
            if g.chance(0.3) {
                s.push(T(true, Flags::PSH_ACK, 10));
            }
            s
        }
        3 => {
            let mut s = vec![
                T(true, Flags::SYN, 0),
                T(false, Flags::SYN_ACK, 0),
                T(true, Flags::ACK, 0),
                T(true, Flags::PSH_ACK, 50),
            ];
            s.push(T(g.chance(0.5), *g.pick(&[Flags::RST, Flags::RST_ACK]), 0));
            if g.chance(0.5) {
                s.push(T(g.chance(0.5), Flags::PSH_ACK, 5));
            }
            s
        }
        4 => vec![T(true, Flags::SYN, 0), T(true, Flags::SYN, 0), T(true, Flags::SYN, 0)],
        8 => {
            // odd flag combinations
            let odd = |g: &mut Gen| Flags {
                syn: g.chance(0.5),
                ack: g.chance(0.5),
                fin: g.chance(0.5),
                rst: g.chance(0.2),
                psh: g.chance(0.5),
            };
            (0..g.rng.gen_range(2..7)).map(|_| T(g.chance(0.5), odd(g), 0)).collect()
        }
        5 => {
            let mut s = vec![T(true, Flags::ACK, 0)];
            for _ in 0..g.rng.gen_range(1..5) {
                s.push(T(g.chance(0.5), Flags::PSH_ACK, data(g) + 1));
            }
            s
        }
        6 => vec![
            T(false, Flags::SYN_ACK, 0),
            T(true, Flags::ACK, 0),
            T(true, Flags::PSH_ACK, 30),
            T(false, Flags::PSH_ACK, 30),
        ],
        _ => vec![
            T(true, Flags::SYN, 0),
            T(false, Flags::SYN_ACK, 0),
            T(true, Flags::ACK, 0),
            T(true, Flags::FIN_ACK, 0),
            T(false, Flags::PSH_ACK, 40),
            T(false, Flags::FIN_ACK, 0),
            T(true, Flags::ACK, 0),
        ],
    }
}

fn udp_script(g: &mut Gen) -> Vec<Step> {
    let n = g.rng.gen_range(1..8);
    let pattern = g.rng.gen_range(0..3);
    (0..n)
        .map(|i| {
            let fwd = match pattern {
                0 => i % 2 == 0,
                1 => true,
                _ => g.chance(0.5),
            };
            Step::Udp(fwd, if g.chance(0.05) { g.rng.gen_range(1000..1473) } else { g.rng.gen_range(8..300) })
        })
        .collect()
}

impl Traffic<'_> {
    fn eni_eps(&self, v6: bool) -> Vec<Ep> {
        let mut out = Vec::new();
        for (i, e) in self.topo.enis.iter().enumerate() {
            let ips: Vec<IpAddr> = if v6 {
                e.v6.iter().map(|a| IpAddr::V6(*a)).collect()
            } else {
                e.v4.iter().map(|a| IpAddr::V4(*a)).collect()
            };
            for ip in ips {
                out.push(Ep { port: (e.port != "(none)").then(|| e.port.clone()), mac: e.mac, ip, eni: Some(i) });
            }
        }
        out
    }

    /// ENI addresses that can send (their ENI is on a port).
    fn sender_eps(&self, v6: bool) -> Vec<Ep> {
        self.eni_eps(v6).into_iter().filter(|e| e.port.is_some()).collect()
    }

    fn ext_eps(&mut self, v6: bool) -> Vec<Ep> {
        let list: Vec<IpAddr> = if v6 {
            EXT_V6.iter().map(|s| s.parse().unwrap()).collect()
        } else {
            EXT_V4.iter().map(|s| s.parse().unwrap()).collect()
        };
        let mac = if self.g.chance(0.03) { [2, 0xcc, 1, 2, 3, self.g.rng.gen()] } else { self.topo.gateway };
        list.into_iter().map(|ip| Ep { port: self.topo.uplink.clone(), mac, ip, eni: None }).collect()
    }

    fn unowned_ep(&mut self, v6: bool) -> Option<Ep> {
        let c: Vec<IpAddr> = self.topo.unowned.iter().copied().filter(|a| a.is_ipv6() == v6).collect();
        c.choose(&mut self.g.rng).map(|&ip| Ep { port: None, mac: [0; 6], ip, eni: None })
    }

    fn pick_pair(&mut self) -> Option<(Ep, Ep)> {
        let v6 = self.g.chance(0.3);
        let enis = self.eni_eps(v6);
        if enis.is_empty() {
            return None;
        }
        let exts = self.ext_eps(v6);
        let a = enis.choose(&mut self.g.rng).unwrap().clone();
        let roll = self.g.rng.gen_range(0..100);
        let pair = if roll < 40 {
            let b = enis.choose(&mut self.g.rng).unwrap().clone();
            (a, b)
        } else if roll < 65 {
            (a, exts.choose(&mut self.g.rng).unwrap().clone())
        } else if roll < 92 {
            (exts.choose(&mut self.g.rng).unwrap().clone(), a)
        } else {
            (a, self.unowned_ep(v6)?)
        };
        Some(pair)
    }

    fn start_flow(&mut self) {
        let Some((a, b)) = self.pick_pair() else {
            return;
        };
        let roll = self.g.rng.gen_range(0..100);
        let proto = if roll < 40 {
            Proto::Tcp
        } else if roll < 65 {
            Proto::Udp
        } else if roll < 82 {
            Proto::Echo
        } else if roll < 87 && !a.ip.is_ipv6() {
            Proto::Timestamp
        } else {
            Proto::Other(*self.g.pick(&[47u8, 50, 132]))
        };
        let steps = match proto {
            Proto::Tcp => tcp_script(self.g),
            Proto::Udp => udp_script(self.g),
            Proto::Echo | Proto::Timestamp => {
                let mut s = Vec::new();
                if self.g.chance(0.15) {
                    s.push(Step::Icmp(true, 1)); // an unsolicited reply first
                }
                for _ in 0..self.g.rng.gen_range(1..4) {
                    s.push(Step::Icmp(true, 0));
                    if self.g.chance(0.8) {
                        s.push(Step::Icmp(false, 1));
                    }
                }
                s
            }
            Proto::Other(_) => {
                (0..self.g.rng.gen_range(1..5)).map(|i| Step::Other(i % 2 == 0 || self.g.chance(0.3))).collect()
            }
        };
        let dport = if self.g.chance(0.8) { *self.g.pick(&PORT_POOL) } else { self.g.rng.gen_range(1..65535) };
        let sport = if self.g.chance(0.15) { *self.g.pick(&PORT_POOL) } else { self.g.rng.gen_range(32768..61000) };
        self.flow_serial += 1;
        let id = if self.g.chance(0.2) { self.g.rng.gen_range(1..4) } else { self.g.rng.gen() };
        self.flows.push(Flow {
            n: self.flow_serial,
            a,
            b,
            proto,
            sport,
            dport,
            id,
            steps,
            next: 0,
            last: self.now,
            seq_a: self.g.rng.gen(),
            seq_b: self.g.rng.gen(),
            sent: vec![],
        });
    }

    fn router(&self) -> Mac {
        Mac(self.topo.router)
    }

    /// Builds the frame of a flow's step; `None` if the sender cannot send (no port).
    fn build(&mut self, fi: usize, step: &Step) -> Option<(String, Vec<u8>, String)> {
        let r = self.router();
        let f = &mut self.flows[fi];
        let fwd = match step {
            Step::Tcp(d, ..) | Step::Udp(d, _) | Step::Icmp(d, _) | Step::Other(d) => *d,
        };
        let (from, to) = if fwd { (&f.a, &f.b) } else { (&f.b, &f.a) };
        let port = from.port.clone()?;
        let (sp, dp) = if fwd { (f.sport, f.dport) } else { (f.dport, f.sport) };
        let host = from.host();
        let (frame, what) = match step {
            Step::Tcp(_, flags, len) => {
                let payload = vec![0x61u8; *len];
                let (seq, ack) = if fwd { (f.seq_a, f.seq_b) } else { (f.seq_b, f.seq_a) };
                let frame = testkit::tcp(&host, to.ip, r, sp, dp, *flags, seq, ack, &payload);
                let adv = *len as u32 + flags.syn as u32 + flags.fin as u32;
                if fwd {
                    f.seq_a = f.seq_a.wrapping_add(adv);
                } else {
                    f.seq_b = f.seq_b.wrapping_add(adv);
                }
                (frame, format!("tcp flags={:#04x} len={len}", flags.bits()))
            }
            Step::Udp(_, len) => (testkit::udp(&host, to.ip, r, sp, dp, &vec![0x75u8; *len]), format!("udp len={len}")),
            Step::Icmp(_, kind) => {
                // kind 0: a request from the sender of this step; 1: a reply.
                let reply = *kind == 1;
                match f.proto {
                    Proto::Timestamp => {
                        let ty = if reply { 14 } else { 13 };
                        let mut rest = [0u8; 4];
                        rest[..2].copy_from_slice(&f.id.to_be_bytes());
                        (
                            testkit::icmp(&host, to.ip, r, ty, 0, rest, &[0u8; 12]),
                            format!("icmp timestamp type {ty} id {}", f.id),
                        )
                    }
                    _ => (
                        testkit::echo(&host, to.ip, r, f.id, 1, reply),
                        format!("echo {} id {}", if reply { "reply" } else { "request" }, f.id),
                    ),
                }
            }
            Step::Other(_) => {
                let Proto::Other(n) = f.proto else { unreachable!() };
                (testkit::other(&host, to.ip, r, n, &[0x47u8; 24]), format!("proto {n}"))
            }
        };
        f.sent.push((fwd, frame.clone()));
        let desc = format!(
            "flow#{} {} {}:{} -> {}:{} {}",
            f.n,
            what,
            from.label(),
            sp,
            to.label(),
            dp,
            if fwd { "(fwd)" } else { "(rev)" }
        );
        Some((port, frame, desc))
    }

    /// Harmless variations of a well-formed frame: Ethernet padding to 60 bytes,
    /// IPv4 options, an IPv6 destination-options header, TCP options, another
    /// destination MAC.
    fn dress(&mut self, mut f: Vec<u8>, what: &mut String) -> Vec<u8> {
        let et = u16::from_be_bytes([f[12], f[13]]);
        let roll = self.g.rng.gen_range(0..100);
        if et == 0x0800 && roll < 5 {
            // IPv4 options: 4 NOPs
            let ihl = (f[14] & 0xf) as usize * 4;
            let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
            f.splice(14 + ihl..14 + ihl, [1u8, 1, 1, 1]);
            f[14] += 1;
            f[16..18].copy_from_slice(&tl.to_be_bytes());
            what.push_str(" [ip options]");
        } else if et == 0x86dd && roll < 10 && !(f[20] == 58 && f.len() > 54 && (133..=137).contains(&f[54])) {
            // destination options header (PadN), before whatever came next
            let nh = f[20];
            let pl = u16::from_be_bytes([f[18], f[19]]) + 8;
            f.splice(54..54, [nh, 0, 1, 4, 0, 0, 0, 0]);
            f[20] = 60;
            f[18..20].copy_from_slice(&pl.to_be_bytes());
            what.push_str(" [ipv6 dest-opts]");
        } else if roll < 20 {
            // TCP options (4 NOPs) on an unfragmented TCP segment
            let (l3, proto, frag) = if et == 0x0800 {
                let ihl = (f[14] & 0xf) as usize * 4;
                (14 + ihl, f[23], u16::from_be_bytes([f[20], f[21]]) & 0x3fff != 0)
            } else if et == 0x86dd {
                (54, f[20], false)
            } else {
                (0, 0, true)
            };
            if proto == 6 && !frag && f.len() >= l3 + 20 {
                f.splice(l3 + 20..l3 + 20, [1u8, 1, 1, 1]);
                f[l3 + 12] += 0x10;
                if et == 0x0800 {
                    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
                    f[16..18].copy_from_slice(&tl.to_be_bytes());
                } else {
                    let pl = u16::from_be_bytes([f[18], f[19]]) + 4;
                    f[18..20].copy_from_slice(&pl.to_be_bytes());
                }
                what.push_str(" [tcp options]");
            }
        }
        if f.len() < 60 && self.g.chance(0.3) {
            f.resize(60, 0);
            what.push_str(" [padded]");
        }
        if self.g.chance(0.03) {
            f[0..6].copy_from_slice(&[2, 0x99, 0x88, 0x77, 0x66, self.g.rng.gen()]);
            what.push_str(" [other dst MAC]");
        }
        f
    }

    fn send(&mut self, port: String, frame: Vec<u8>, what: String) {
        // VLAN tags (7.1) and the destination MAC (R5) on some frames.
        let mut frame = frame;
        let mut what = what;
        if frame.len() >= 14 && self.g.chance(0.08) {
            frame = testkit::vlan_tag(&frame, self.g.rng.gen_range(1..4095));
            what.push_str(" [vlan]");
            if self.g.chance(0.3) {
                // outer 802.1ad
                let mut f = frame[..12].to_vec();
                f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x07]);
                f.extend_from_slice(&frame[12..]);
                frame = f;
                what.push_str(" [qinq]");
            }
        }
        self.events.push(Event::Send { port, frame, what });
        self.sends += 1;
    }

    fn advance(&mut self, ns: u64) {
        if ns > 0 {
            self.now += ns;
            self.events.push(Event::Advance(ns));
        }
    }

    fn step_flow(&mut self) {
        if self.flows.is_empty() {
            return;
        }
        let fi = self.g.rng.gen_range(0..self.flows.len());
        let f = &self.flows[fi];
        if f.next >= f.steps.len() {
            self.flows.swap_remove(fi);
            return;
        }
        self.step_this(fi);
    }

    /// A packet more of a flow whose script is done: more of the same, either way.
    fn extra_step(&mut self, fi: usize) -> Step {
        let fwd = self.g.chance(0.5);
        match self.flows[fi].proto {
            Proto::Tcp => Step::Tcp(fwd, Flags::PSH_ACK, 10),
            Proto::Udp => Step::Udp(fwd, 20),
            Proto::Echo | Proto::Timestamp => Step::Icmp(fwd, self.g.rng.gen_range(0..2)),
            Proto::Other(_) => Step::Other(fwd),
        }
    }

    fn step_this(&mut self, fi: usize) {
        let f = &self.flows[fi];
        if f.next >= f.steps.len() {
            let s = self.extra_step(fi);
            self.flows[fi].steps.push(s);
        }
        let f = &self.flows[fi];
        let step = f.steps[f.next].clone();
        self.flows[fi].next += 1;
        let Some((port, frame, what)) = self.build(fi, &step) else {
            return;
        };
        self.flows[fi].last = self.now;
        if self.g.chance(0.06) && frame.len() > 14 + 60 {
            self.send_fragments(port, frame, what);
        } else {
            let mut what = what;
            let frame = self.dress(frame, &mut what);
            self.send(port, frame, what);
        }
    }

    fn send_fragments(&mut self, port: String, frame: Vec<u8>, what: String) {
        let chunk = *self.g.pick(&[8usize, 16, 24, 32, 48]);
        self.frag_id = self.frag_id.wrapping_add(self.g.rng.gen_range(1..1000));
        let frags = testkit::fragment(&frame, chunk, self.frag_id);
        let mut order: Vec<usize> = (0..frags.len()).collect();
        match self.g.rng.gen_range(0..6) {
            0 => order.reverse(),
            1 => {
                order.remove(0);
            }
            2 => {
                let x = order[order.len() - 1];
                order.push(x);
            }
            _ => {}
        }
        let late = self.g.chance(0.1);
        for (k, i) in order.into_iter().enumerate() {
            if k == 1 && late {
                let gap =
                    (30 * NS).wrapping_add_signed(*self.g.pick(&[-1_000_000i64, 1_000_000, -300_000_000, 300_000_000]));
                self.advance(gap);
            } else if k > 0 {
                let d = self.g.rng.gen_range(0..2_000_000);
                self.advance(d);
            }
            self.send(port.clone(), frags[i].clone(), format!("{what} [fragment {i}/{} chunk {chunk}]", frags.len()));
        }
    }

    fn icmp_error(&mut self) {
        let cands: Vec<usize> = (0..self.flows.len()).filter(|&i| !self.flows[i].sent.is_empty()).collect();
        let Some(&fi) = cands.choose(&mut self.g.rng) else {
            return;
        };
        let (fwd, quoted) = self.flows[fi].sent.choose(&mut self.g.rng).unwrap().clone();
        let (fa, fb, fnum) = (self.flows[fi].a.clone(), self.flows[fi].b.clone(), self.flows[fi].n);
        // the receiver of the quoted frame reports to its sender, mostly
        let (reporter, target) = if fwd { (fb, fa) } else { (fa, fb) };
        let v6 = target.ip.is_ipv6();
        let (reporter, target) = if self.g.chance(0.15) {
            (target, reporter) // wrong way round
        } else {
            (reporter, target)
        };
        let reporter = if reporter.eni.is_none() && self.g.chance(0.3) {
            // a router on the way
            let e = self.ext_eps(v6);
            e.choose(&mut self.g.rng).unwrap().clone()
        } else {
            reporter
        };
        let Some(port) = reporter.port.clone() else {
            return;
        };
        let (ty, code) = if v6 {
            *self.g.pick(&[(1u8, 4u8), (1, 0), (2, 0), (3, 0), (4, 0)])
        } else {
            *self.g.pick(&[(3u8, 3u8), (3, 4), (3, 1), (11, 0), (12, 0)])
        };
        let mut quoted = quoted;
        let mut short = "";
        if self.g.chance(0.05) {
            // a quote shorter than the IP header + 8 bytes RFC 792 asks for
            let ihl = if v6 { 40 } else { (quoted[14] & 0xf) as usize * 4 };
            quoted.truncate((14 + ihl + 4).min(quoted.len()));
            if !v6 {
                let tl = (ihl + 4) as u16;
                quoted[16..18].copy_from_slice(&tl.to_be_bytes());
            } else {
                quoted[18..20].copy_from_slice(&4u16.to_be_bytes());
            }
            short = " [short quote]";
        }
        let frame = testkit::icmp_error(&reporter.host(), target.ip, self.router(), ty, code, &quoted);
        let mut what = format!("icmp error {ty}/{code} {} -> {} about flow#{}", reporter.label(), target.label(), fnum);
        what.push_str(short);
        let frame = self.dress(frame, &mut what);
        self.send(port, frame, what);
    }

    fn stray(&mut self) {
        let r = self.router();
        let roll = self.g.rng.gen_range(0..100);
        let enis = self.eni_eps(false);
        let a = self.sender_eps(false).choose(&mut self.g.rng).unwrap().clone();
        let port = a.port.clone().unwrap();
        if roll < 14 {
            // ARP
            let target: IpAddr = match self.g.rng.gen_range(0..6) {
                0 => enis.choose(&mut self.g.rng).unwrap().ip,
                1 | 2 => self.unowned_ep(false).unwrap().ip,
                3 => EXT_V4[0].parse().unwrap(),
                4 => {
                    let e = self.eni_eps(false);
                    e.choose(&mut self.g.rng).unwrap().ip
                }
                _ => a.ip,
            };
            let IpAddr::V4(t4) = target else { unreachable!() };
            let (from, port, who) = if self.topo.uplink.is_some() && self.g.chance(0.2) {
                let ext = self.ext_eps(false);
                let e = ext.choose(&mut self.g.rng).unwrap().clone();
                let p = e.port.clone().unwrap();
                (e, p, "uplink")
            } else {
                (a.clone(), port, "eni")
            };
            let mut h = from.host();
            let variant = self.g.rng.gen_range(0..10);
            match variant {
                0 => h.ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                1 => h.ip = target,
                _ => {}
            }
            let mut frame = testkit::arp_request(&h, t4);
            if variant == 2 {
                frame[21] = 2; // reply
            }
            if variant == 3 && who == "eni" {
                frame[6..12].copy_from_slice(&[2, 0xde, 0xad, 0xbe, 0xef, 3]); // unknown MAC
            }
            self.send(port, frame, format!("ARP {who} {} asks {target} (variant {variant})", h.ip));
        } else if roll < 24 {
            // neighbour discovery
            let e = self.topo.enis[a.eni.unwrap()].clone();
            let m = e.mac;
            let ll = Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
            let src = match self.g.rng.gen_range(0..5) {
                0 => Ipv6Addr::UNSPECIFIED,
                1 if !e.v6.is_empty() => e.v6[0],
                _ => ll,
            };
            let rm = self.topo.router;
            let router_ll = Ipv6Addr::from([
                0xfe,
                0x80,
                0,
                0,
                0,
                0,
                0,
                0,
                rm[0] ^ 2,
                rm[1],
                rm[2],
                0xff,
                0xfe,
                rm[3],
                rm[4],
                rm[5],
            ]);
            let v6s = self.eni_eps(true);
            let target: Ipv6Addr = match self.g.rng.gen_range(0..7) {
                0 => "fe80::1".parse().unwrap(),
                1 => router_ll,
                2 if !v6s.is_empty() => match v6s.choose(&mut self.g.rng).unwrap().ip {
                    IpAddr::V6(x) => x,
                    _ => unreachable!(),
                },
                3 => match self.unowned_ep(true) {
                    Some(Ep { ip: IpAddr::V6(x), .. }) => x,
                    _ => "fe80::1".parse().unwrap(),
                },
                4 => EXT_V6[0].parse().unwrap(),
                _ => match self.topo.subnets[e.subnet].v6 {
                    Some(b) => Ipv6Addr::from(b | 1),
                    None => "fe80::1".parse().unwrap(),
                },
            };
            let (from_host, port, who) = if self.topo.uplink.is_some() && self.g.chance(0.15) {
                let ext = self.ext_eps(true);
                let x = ext.choose(&mut self.g.rng).unwrap().clone();
                let p = x.port.clone().unwrap();
                (x.host(), p, "uplink")
            } else {
                (Host { mac: Mac(m), ip: IpAddr::V6(src) }, port, "eni")
            };
            let mut frame = testkit::neighbor_solicit(&from_host, target);
            let variant = self.g.rng.gen_range(0..8);
            if variant == 0 {
                frame[14 + 7] = 64; // hop limit
            } else if variant == 1 {
                frame[14 + 40] = 136; // an advertisement
            } else if variant == 2 {
                frame[14 + 40] = 133; // router solicitation
            } else if variant == 3 && who == "eni" {
                frame[6..12].copy_from_slice(&[2, 0xde, 0xad, 0xbe, 0xef, 4]); // unknown MAC
            }
            self.send(port, frame, format!("ND {who} {} for {target} (variant {variant})", from_host.ip));
        } else if roll < 30 {
            // other ethertypes
            let mut frame = testkit::udp(&a.host(), EXT_V4[0].parse().unwrap(), r, 1, 2, &[0; 30]);
            let et: u16 = *self.g.pick(&[0x88cc, 0x8863, 0x86dd + 1, 0x0842]);
            frame[12..14].copy_from_slice(&et.to_be_bytes());
            if self.g.chance(0.3) {
                frame[6] ^= 0x40; // unknown MAC too
            }
            self.send(port, frame, format!("ethertype {et:#06x}"));
        } else if roll < 40 {
            // unknown MAC: random, or an ENI of another port
            let mut frame = self.some_ip_frame(&a);
            let other = self.topo.enis.iter().find(|e| Some(&e.port) != a.port.as_ref()).map(|e| e.mac);
            let m = match other {
                Some(m) if self.g.chance(0.5) => m,
                _ => [2, 0xde, 0xad, self.g.rng.gen(), 0, 1],
            };
            frame[6..12].copy_from_slice(&m);
            self.send(port, frame, format!("unknown MAC {m:02x?} on {}", a.label()));
        } else if roll < 52 {
            // spoofed source from an ENI
            let v6 = self.g.chance(0.25);
            let eps = self.eni_eps(v6);
            let Some(spoofer) = self.sender_eps(false).choose(&mut self.g.rng).cloned() else {
                return;
            };
            let src: IpAddr = match self.g.rng.gen_range(0..3) {
                0 if !eps.is_empty() => eps.choose(&mut self.g.rng).unwrap().ip,
                1 => {
                    if v6 {
                        EXT_V6[1].parse().unwrap()
                    } else {
                        EXT_V4[2].parse().unwrap()
                    }
                }
                _ => match self.unowned_ep(v6) {
                    Some(e) => e.ip,
                    None => return,
                },
            };
            let dst = if self.g.chance(0.5) {
                if v6 {
                    EXT_V6[0].parse().unwrap()
                } else {
                    EXT_V4[0].parse().unwrap()
                }
            } else {
                match eps.choose(&mut self.g.rng) {
                    Some(e) => e.ip,
                    None => return,
                }
            };
            let h = Host { mac: Mac(spoofer.mac), ip: src };
            let frame = testkit::udp(&h, dst, r, 5353, *self.g.pick(&PORT_POOL), &[1; 20]);
            let port = spoofer.port.clone().unwrap();
            self.send(port, frame, format!("spoofed {src} -> {dst} from {}", spoofer.label()));
        } else if roll < 58 {
            // uplink frame with a VPC source
            let Some(up) = self.topo.uplink.clone() else {
                return;
            };
            let v6 = self.g.chance(0.3) && !self.eni_eps(true).is_empty();
            let src = match self.unowned_ep(v6) {
                Some(e) if self.g.chance(0.3) => e.ip,
                _ => self.eni_eps(v6).choose(&mut self.g.rng).unwrap().ip,
            };
            let dst = self.eni_eps(v6).choose(&mut self.g.rng).unwrap().ip;
            let h = Host { mac: Mac(self.topo.gateway), ip: src };
            let frame = testkit::tcp(&h, dst, r, 1234, 80, Flags::SYN, 1, 0, &[]);
            self.send(up, frame, format!("uplink spoof {src} -> {dst}"));
        } else if roll < 72 {
            // malformed
            let mut frame = self.some_ip_frame(&a);
            let v6 = frame[12] == 0x86;
            let kind = self.g.rng.gen_range(0..7);
            match kind {
                0 => frame.truncate(self.g.rng.gen_range(0..14)),
                1 => frame.truncate(14 + self.g.rng.gen_range(1..if v6 { 40 } else { 20 })),
                2 if !v6 => frame[14] = 0x44,
                3 if !v6 => {
                    let tl = u16::from_be_bytes([frame[16], frame[17]]) + 40;
                    frame[16..18].copy_from_slice(&tl.to_be_bytes());
                }
                3 | 2 => {
                    let pl = u16::from_be_bytes([frame[18], frame[19]]) + 100;
                    frame[18..20].copy_from_slice(&pl.to_be_bytes());
                }
                4 => {
                    // TCP data offset < 5 or beyond the segment
                    let h = Host { mac: Mac(a.mac), ip: a.ip };
                    frame = testkit::tcp(&h, EXT_V4[1].parse().unwrap(), r, 40000, 80, Flags::ACK, 1, 1, &[]);
                    frame[14 + 20 + 12] = if self.g.chance(0.5) { 0x30 } else { 0xf0 };
                }
                5 => {
                    // truncated L4 with consistent IP lengths
                    let h = Host { mac: Mac(a.mac), ip: a.ip };
                    let proto = *self.g.pick(&[6u8, 17, 1]);
                    frame = testkit::other(&h, EXT_V4[1].parse().unwrap(), r, proto, &[0; 6]);
                }
                _ => {
                    // version mismatch
                    frame[14] = (frame[14] & 0x0f) | if v6 { 0x40 } else { 0x60 };
                }
            }
            self.send(port, frame, format!("malformed kind {kind} from {}", a.label()));
        } else if roll < 80 {
            // special / reserved destinations
            let v6 = self.g.chance(0.3) && !self.sender_eps(true).is_empty();
            let src = if v6 { self.sender_eps(true).choose(&mut self.g.rng).unwrap().clone() } else { a.clone() };
            let dst: IpAddr = if v6 {
                match self.g.rng.gen_range(0..4) {
                    0 => "ff02::1".parse().unwrap(),
                    1 => "fe80::1".parse().unwrap(),
                    2 => "::1".parse().unwrap(),
                    _ => match self.unowned_ep(true) {
                        Some(e) => e.ip,
                        None => "ff02::2".parse().unwrap(),
                    },
                }
            } else {
                match self.g.rng.gen_range(0..7) {
                    0 => "224.0.0.5".parse().unwrap(),
                    1 => "255.255.255.255".parse().unwrap(),
                    2 => "169.254.169.254".parse().unwrap(),
                    3 => "127.0.0.1".parse().unwrap(),
                    4 => "0.0.0.0".parse().unwrap(),
                    _ => self.unowned_ep(false).unwrap().ip,
                }
            };
            let mut h = src.host();
            if !v6 && self.g.chance(0.2) {
                h.ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED); // DHCP discover
            }
            let frame = testkit::udp(&h, dst, r, 68, 53, &[0; 16]);
            let port = src.port.clone().unwrap();
            self.send(port, frame, format!("{} -> special/reserved {dst}", src.label()));
        } else if roll < 88 {
            // non-query ICMP
            let v6 = self.g.chance(0.3) && !self.eni_eps(true).is_empty();
            let Some((x, y)) = (0..5).find_map(|_| {
                let p = self.pick_pair()?;
                (p.0.ip.is_ipv6() == v6).then_some(p)
            }) else {
                return;
            };
            let Some(port) = x.port.clone() else { return };
            let (ty, code) = if v6 {
                *self.g.pick(&[(4u8, 0u8), (130, 0), (139, 0)])
            } else {
                *self.g.pick(&[(5u8, 1u8), (9, 0), (10, 0), (12, 0), (4, 0)])
            };
            let frame = testkit::icmp(&x.host(), y.ip, r, ty, code, [0; 4], &[0u8; 28]);
            self.send(port, frame, format!("icmp {ty}/{code} {} -> {}", x.label(), y.label()));
        } else {
            // an orphan later fragment, or an ICMP error about nothing
            let Some((x, y)) = self.pick_pair() else {
                return;
            };
            let Some(port) = x.port.clone() else { return };
            let frame = testkit::udp(&x.host(), y.ip, r, 4000, 53, &[0x33; 64]);
            let frags = testkit::fragment(&frame, 32, self.g.rng.gen_range(1..60000));
            let i = self.g.rng.gen_range(1..frags.len());
            self.send(port, frags[i].clone(), format!("orphan fragment {} -> {}", x.label(), y.label()));
        }
    }

    fn some_ip_frame(&mut self, a: &Ep) -> Vec<u8> {
        let r = self.router();
        let dst: IpAddr = EXT_V4[0].parse().unwrap();
        match self.g.rng.gen_range(0..3) {
            0 => testkit::tcp(&a.host(), dst, r, 40000, 80, Flags::SYN, 7, 0, &[]),
            1 => testkit::udp(&a.host(), dst, r, 40000, 53, &[0; 40]),
            _ => {
                let v6 = self.eni_eps(true);
                match v6.first() {
                    Some(e) => testkit::udp(&e.host(), EXT_V6[0].parse().unwrap(), r, 1, 2, &[0; 10]),
                    None => testkit::echo(&a.host(), dst, r, 9, 9, false),
                }
            }
        }
    }

    fn time_step(&mut self) {
        let roll = self.g.rng.gen_range(0..1000);
        if roll < 900 {
            let d = self.g.rng.gen_range(0..20_000_000);
            self.advance(d);
        } else if roll < 940 {
            let d = self.g.rng.gen_range(500_000_000..3_000_000_000);
            self.advance(d);
        } else if roll < 985 {
            // idle just below / above a timeout of a live flow
            if self.flows.is_empty() {
                return;
            }
            let fi = self.g.rng.gen_range(0..self.flows.len());
            let f = &self.flows[fi];
            let eni = f.a.eni.or(f.b.eni).map(|i| self.topo.enis[i].clone());
            let mut ts = vec![10u64, 30, 60, 600];
            if let Some(e) = eni {
                ts.extend([e.udp, e.udp_stream]);
                if e.tcp_est <= 3600 || self.g.chance(0.05) {
                    ts.push(e.tcp_est);
                }
            }
            let t = *self.g.pick(&ts) * NS;
            let delta = *self.g.pick(&[1_000_000u64, 400_000_000, 1]);
            let target = if self.g.chance(0.5) { f.last + t - delta } else { f.last + t + delta };
            if target > self.now {
                self.advance(target - self.now);
                // and a packet of that flow right then
                self.step_this(fi);
            }
        } else {
            // across a whole second, just before or just after it
            let next = (self.now / NS + 1) * NS;
            let target = if self.g.chance(0.5) { next - 1_000_000 } else { next + 1_000_000 };
            if target > self.now {
                self.advance(target - self.now);
            }
        }
    }

    fn change(&mut self) {
        let mut what = String::new();
        let roll = self.g.rng.gen_range(0..100);
        let topo = self.topo.clone();
        if roll < 25 {
            // add an SG rule
            if self.cfg.security_groups.is_empty() {
                return;
            }
            let gi = self.g.rng.gen_range(0..self.cfg.security_groups.len());
            let vpc = topo.vpc_ids.iter().position(|v| *v == self.cfg.security_groups[gi].vpc_id).unwrap();
            let egress = self.g.chance(0.4);
            let sg = &mut self.cfg.security_groups[gi];
            let id = sg.group_id.clone();
            let perms = if egress { &mut sg.ip_permissions_egress } else { &mut sg.ip_permissions };
            let mut seen = rule_keys(perms);
            if let Some(d) = add_rule(self.g, &topo, vpc, &id, perms, &mut seen) {
                what = format!("authorize {} {id} {d}", if egress { "egress" } else { "ingress" });
            }
        } else if roll < 50 {
            // revoke an SG rule (one peer), preferring a rule of a live flow's ENI
            let target_eni = self.flows.choose(&mut self.g.rng).and_then(|f| f.a.eni.or(f.b.eni));
            let groups: Vec<String> = match target_eni {
                Some(i) if self.g.chance(0.7) => {
                    self.cfg.network_interfaces[i].groups.iter().map(|g| g.group_id.clone()).collect()
                }
                _ => self.cfg.security_groups.iter().map(|g| g.group_id.clone()).collect(),
            };
            let Some(gid) = groups.choose(&mut self.g.rng).cloned() else {
                return;
            };
            let egress = self.g.chance(0.4);
            let sg = self.cfg.security_groups.iter_mut().find(|s| s.group_id == gid).unwrap();
            let perms = if egress { &mut sg.ip_permissions_egress } else { &mut sg.ip_permissions };
            if perms.is_empty() {
                return;
            }
            let pi = self.g.rng.gen_range(0..perms.len());
            let p = &mut perms[pi];
            let n = p.ip_ranges.len() + p.ipv6_ranges.len() + p.user_id_group_pairs.len();
            let k = self.g.rng.gen_range(0..n);
            let peer = if k < p.ip_ranges.len() {
                p.ip_ranges.remove(k).cidr_ip
            } else if k < p.ip_ranges.len() + p.ipv6_ranges.len() {
                p.ipv6_ranges.remove(k - p.ip_ranges.len()).cidr_ipv6
            } else {
                p.user_id_group_pairs.remove(k - p.ip_ranges.len() - p.ipv6_ranges.len()).group_id.unwrap()
            };
            what = format!(
                "revoke {} {gid} {} {:?}-{:?} {peer}",
                if egress { "egress" } else { "ingress" },
                p.ip_protocol,
                p.from_port,
                p.to_port
            );
            if p.ip_ranges.is_empty() && p.ipv6_ranges.is_empty() && p.user_id_group_pairs.is_empty() {
                perms.remove(pi);
            }
        } else if roll < 65 {
            // add a NACL entry, often a deny for a live flow's peer
            if self.cfg.network_acls.is_empty() {
                return;
            }
            let ai = self.g.rng.gen_range(0..self.cfg.network_acls.len());
            let vpc = topo.vpc_ids.iter().position(|v| *v == self.cfg.network_acls[ai].vpc_id).unwrap();
            let v6 = topo.vpc_v6[vpc].is_some();
            let egress = self.g.chance(0.5);
            let used: HashSet<(i64, bool)> =
                self.cfg.network_acls[ai].entries.iter().map(|e| (e.rule_number, e.egress)).collect();
            let count = self.cfg.network_acls[ai]
                .entries
                .iter()
                .filter(|e| e.egress == egress && e.rule_number < 32767)
                .count();
            if count >= 15 {
                return;
            }
            let num = free_rule_number(self.g, &used, egress);
            let mut e = random_nacl_entry(self.g, &topo, egress, num, v6);
            if let Some(f) = self.flows.choose(&mut self.g.rng) {
                if self.g.chance(0.5) {
                    let peer = if egress { f.b.ip } else { f.a.ip };
                    e.rule_action = "deny".into();
                    e.protocol = "-1".into();
                    e.port_range = None;
                    e.icmp_type_code = None;
                    match peer {
                        IpAddr::V4(x) => {
                            e.cidr_block = Some(format!("{x}/32"));
                            e.ipv6_cidr_block = None;
                        }
                        IpAddr::V6(x) if v6 => {
                            e.cidr_block = None;
                            e.ipv6_cidr_block = Some(format!("{x}/128"));
                        }
                        _ => {}
                    }
                }
            }
            what = format!(
                "NACL {} add {} {} {} {:?}{:?} {}",
                self.cfg.network_acls[ai].network_acl_id,
                if egress { "egress" } else { "ingress" },
                e.rule_number,
                e.protocol,
                e.cidr_block,
                e.ipv6_cidr_block,
                e.rule_action
            );
            self.cfg.network_acls[ai].entries.push(e);
        } else if roll < 75 {
            // delete a NACL entry
            if self.cfg.network_acls.is_empty() {
                return;
            }
            let ai = self.g.rng.gen_range(0..self.cfg.network_acls.len());
            let acl = &mut self.cfg.network_acls[ai];
            let cands: Vec<usize> = (0..acl.entries.len()).filter(|&i| acl.entries[i].rule_number < 32767).collect();
            let Some(&i) = cands.choose(&mut self.g.rng) else {
                return;
            };
            let e = acl.entries.remove(i);
            what = format!(
                "NACL {} delete {} {}",
                acl.network_acl_id,
                if e.egress { "egress" } else { "ingress" },
                e.rule_number
            );
        } else if roll < 85 && self.timeout_changes {
            // change an ENI's conntrack timeouts (7.1: they apply to existing entries)
            let i = self.g.rng.gen_range(0..topo.enis.len());
            let ct = ConnectionTrackingConfiguration {
                tcp_established_timeout: Some(*self.g.pick(&[60i64, 90, 3600, 432000])),
                udp_timeout: Some(*self.g.pick(&[30i64, 45, 60])),
                udp_stream_timeout: Some(*self.g.pick(&[60i64, 120, 180])),
            };
            what = format!("ENI {} timeouts -> {ct:?}", topo.enis[i].id);
            self.cfg.network_interfaces[i].connection_tracking_configuration = Some(ct);
        } else if roll < 88 {
            // flip source/destination check
            let i = self.g.rng.gen_range(0..topo.enis.len());
            let n = &mut self.cfg.network_interfaces[i];
            n.source_dest_check = !n.source_dest_check;
            what = format!("ENI {} SourceDestCheck -> {}", n.network_interface_id, n.source_dest_check);
        } else if roll < 90 {
            // change an ENI's groups
            let i = self.g.rng.gen_range(0..topo.enis.len());
            let groups = random_groups(self.g, &topo, topo.enis[i].vpc);
            what = format!(
                "ENI {} groups -> {:?}",
                topo.enis[i].id,
                groups.iter().map(|g| g.group_id.clone()).collect::<Vec<_>>()
            );
            self.cfg.network_interfaces[i].groups = groups;
        } else {
            // move a subnet to another NACL of its VPC (or back to the default)
            let s = self.g.rng.gen_range(0..topo.subnets.len());
            let sid = topo.subnets[s].id.clone();
            let vpc_id = topo.vpc_ids[topo.subnets[s].vpc].clone();
            for a in self.cfg.network_acls.iter_mut() {
                a.associations.retain(|x| x.subnet_id != sid);
            }
            let cands: Vec<usize> =
                (0..self.cfg.network_acls.len()).filter(|&i| self.cfg.network_acls[i].vpc_id == vpc_id).collect();
            match cands.choose(&mut self.g.rng) {
                Some(&ai) if self.g.chance(0.7) => {
                    let id = self.g.id("aclassoc");
                    let acl = &mut self.cfg.network_acls[ai];
                    acl.associations.push(NetworkAclAssociation {
                        network_acl_association_id: id,
                        network_acl_id: acl.network_acl_id.clone(),
                        subnet_id: sid.clone(),
                    });
                    what = format!("subnet {sid} -> {}", acl.network_acl_id);
                }
                _ => what = format!("subnet {sid} -> default NACL"),
            }
        }
        if !what.is_empty() {
            self.events.push(Event::Update { config: Box::new(self.cfg.clone()), what });
        }
    }
}

/// The scenario for config `index` of the run seeded `seed`, with `frames` frames.
pub fn scenario(seed: u64, index: u64, frames: usize) -> Scenario {
    let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)), serial: 0 };
    let (cfg, topo) = gen_config(&mut g);
    let config = cfg.clone();
    let mut t = Traffic {
        g: &mut g,
        topo,
        cfg,
        events: Vec::new(),
        now: 0,
        sends: 0,
        flows: Vec::new(),
        flow_serial: 0,
        frag_id: 1,
        timeout_changes: std::env::var("VPCGATE_DIFF_TIMEOUT_CHANGES").map_or(true, |v| v != "0"),
    };
    let change_every = t.g.rng.gen_range(30..150);
    let mut next_change = change_every;
    while t.sends < frames {
        t.time_step();
        let roll = t.g.rng.gen_range(0..100);
        if roll < 12 || t.flows.len() < 2 {
            t.start_flow();
        } else if roll < 72 {
            t.step_flow();
        } else if roll < 78 {
            t.icmp_error();
        } else {
            t.stray();
        }
        if t.sends >= next_change {
            t.change();
            next_change = t.sends + t.g.rng.gen_range(change_every / 2..change_every * 2);
        }
    }
    Scenario { config, events: t.events }
}
