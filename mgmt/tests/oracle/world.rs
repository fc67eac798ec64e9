//! The oracle's reading of a config document: the raw EC2 strings interpreted once
//! per config into plain structs (sections 1.1, 1.2, 3.1, 3.2, 7 and 7.1). Uses only
//! `mgmt::model` and std.

use std::collections::HashMap;
use std::net::IpAddr;

use mgmt::model::{Config, IpPermission, NetworkAclEntry};

/// An address block. `contains` is family-aware: IPv4 blocks never contain IPv6
/// addresses and the reverse (3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Cidr {
        let (a, l) = s.split_once('/').unwrap_or_else(|| panic!("oracle: bad CIDR {s}"));
        Cidr {
            net: a.parse().unwrap_or_else(|_| panic!("oracle: bad CIDR {s}")),
            len: l.parse().unwrap_or_else(|_| panic!("oracle: bad CIDR {s}")),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - self.len as u32) };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - self.len as u32) };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }

    pub fn is_v6(&self) -> bool {
        self.net.is_ipv6()
    }
}

pub fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    assert_eq!(parts.len(), 6, "oracle: bad MAC {s}");
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap_or_else(|_| panic!("oracle: bad MAC {s}"));
    }
    m
}

/// What a security group rule's protocol and ports mean (1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgProto {
    /// `-1`, or any protocol number other than tcp/udp/icmp/icmpv6 (`Other`): every
    /// port whatever range was given.
    All,
    Tcp(u16, u16),
    Udp(u16, u16),
    /// ICMP type (`FromPort`) and code (`ToPort`), -1 = all.
    Icmp(i64, i64),
    /// Same for ICMPv6; an omitted range means all types and codes.
    Icmpv6(i64, i64),
    Other(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Cidr(Cidr),
    Group(String),
}

#[derive(Clone, Debug)]
pub struct SgRule {
    pub proto: SgProto,
    pub peer: Peer,
}

#[derive(Clone, Debug, Default)]
pub struct Sg {
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

/// What a NACL entry's protocol means (3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaclProto {
    /// `-1`: everything.
    All,
    Tcp(u16, u16),
    Udp(u16, u16),
    /// Protocol 1, or 58 with an IPv6 block: type and code, -1 = all.
    Icmp(u8, i64, i64),
    /// Any other number (and 58 with an IPv4 block): that protocol, all ports/types.
    Other(u8),
}

#[derive(Clone, Debug)]
pub struct NaclEntry {
    pub number: i64,
    pub egress: bool,
    pub proto: NaclProto,
    pub cidr: Cidr,
    pub allow: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Nacl {
    pub id: String,
    /// Sorted by rule number.
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug)]
pub struct Vpc {
    pub id: String,
    pub cidrs: Vec<Cidr>,
    pub has_v6: bool,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: String,
    pub vpc: usize,
    pub nacl: Nacl,
}

#[derive(Clone, Debug)]
pub struct Eni {
    pub id: String,
    pub mac: [u8; 6],
    pub port: Option<usize>,
    pub subnet: usize,
    pub vpc: usize,
    /// Every private IPv4 (primary and secondary) and every IPv6 address.
    pub addrs: Vec<IpAddr>,
    /// Its groups; its VPC's default SG when it lists none (7.1).
    pub groups: Vec<String>,
    pub src_dst_check: bool,
    pub tcp_established: u64,
    pub udp: u64,
    pub udp_stream: u64,
}

#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub uplink: bool,
    pub gateway: Option<[u8; 6]>,
    pub enis: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub router_mac: [u8; 6],
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub enis: Vec<Eni>,
    pub sgs: HashMap<String, Sg>,
    /// Group id -> every address of every ENI having that group (7, "SG reference
    /// match set").
    pub members: HashMap<String, Vec<IpAddr>>,
    pub ports: Vec<Port>,
    pub max_entries: u64,
    pub max_entries_per_eni: u64,
}

fn protocol_number(p: &str) -> Option<i64> {
    match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => Some(-1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        n => n.parse().ok(),
    }
}

fn port(v: Option<i64>, dflt: i64) -> u16 {
    v.unwrap_or(dflt).clamp(0, 65535) as u16
}

fn sg_proto(p: &IpPermission) -> SgProto {
    match protocol_number(&p.ip_protocol) {
        Some(-1) => SgProto::All,
        Some(6) => SgProto::Tcp(port(p.from_port, 0), port(p.to_port, 65535)),
        Some(17) => SgProto::Udp(port(p.from_port, 0), port(p.to_port, 65535)),
        Some(1) => SgProto::Icmp(p.from_port.unwrap_or(-1), p.to_port.unwrap_or(-1)),
        Some(58) => SgProto::Icmpv6(p.from_port.unwrap_or(-1), p.to_port.unwrap_or(-1)),
        Some(n) if (0..=255).contains(&n) => SgProto::Other(n as u8),
        _ => panic!("oracle: unknown IpProtocol {}", p.ip_protocol),
    }
}

fn sg_rules(perms: &[IpPermission]) -> Vec<SgRule> {
    let mut out = Vec::new();
    for p in perms {
        let proto = sg_proto(p);
        for r in &p.ip_ranges {
            out.push(SgRule { proto, peer: Peer::Cidr(Cidr::parse(&r.cidr_ip)) });
        }
        for r in &p.ipv6_ranges {
            out.push(SgRule { proto, peer: Peer::Cidr(Cidr::parse(&r.cidr_ipv6)) });
        }
        for g in &p.user_id_group_pairs {
            let id = g.group_id.clone().expect("oracle: group pair without GroupId");
            out.push(SgRule { proto, peer: Peer::Group(id) });
        }
        assert!(p.prefix_list_ids.is_empty(), "oracle: prefix lists are refused (7.1)");
    }
    out
}

fn nacl_entry(e: &NetworkAclEntry) -> NaclEntry {
    let cidr = match (&e.cidr_block, &e.ipv6_cidr_block) {
        (Some(c), _) => Cidr::parse(c),
        (None, Some(c)) => Cidr::parse(c),
        _ => panic!("oracle: NACL entry without a block"),
    };
    let range = |lo: i64, hi: i64| match &e.port_range {
        Some(r) => (port(r.from, lo), port(r.to, hi)),
        None => (lo as u16, hi as u16),
    };
    let icmp = |n: u8| {
        let (t, c) = match &e.icmp_type_code {
            Some(tc) => (tc.r#type.unwrap_or(-1), tc.code.unwrap_or(-1)),
            None => (-1, -1),
        };
        NaclProto::Icmp(n, t, c)
    };
    let proto = match protocol_number(&e.protocol) {
        Some(-1) => NaclProto::All,
        Some(6) => {
            let (a, b) = range(0, 65535);
            NaclProto::Tcp(a, b)
        }
        Some(17) => {
            let (a, b) = range(0, 65535);
            NaclProto::Udp(a, b)
        }
        Some(1) => icmp(1),
        // 58 with an IPv4 block matches all of protocol 58; with IPv6, type and code.
        Some(58) if cidr.is_v6() => icmp(58),
        Some(n) if (0..=255).contains(&n) => NaclProto::Other(n as u8),
        _ => panic!("oracle: unknown NACL protocol {}", e.protocol),
    };
    NaclEntry {
        number: e.rule_number,
        egress: e.egress,
        proto,
        cidr,
        allow: e.rule_action.eq_ignore_ascii_case("allow"),
    }
}

/// The default NACL AWS creates (3.2): rule 100 allows all IPv4 both ways, and with
/// an IPv6 block rule 101 allows `::/0`; the `*` denies are implicit.
fn default_nacl(vpc: &Vpc) -> Nacl {
    let mut entries = Vec::new();
    for egress in [false, true] {
        entries.push(NaclEntry {
            number: 100,
            egress,
            proto: NaclProto::All,
            cidr: Cidr::parse("0.0.0.0/0"),
            allow: true,
        });
        if vpc.has_v6 {
            entries.push(NaclEntry {
                number: 101,
                egress,
                proto: NaclProto::All,
                cidr: Cidr::parse("::/0"),
                allow: true,
            });
        }
    }
    Nacl { id: format!("(default NACL of {})", vpc.id), entries }
}

/// The default SG AWS creates (1.2): all inbound from itself; all outbound to
/// 0.0.0.0/0, and to ::/0 only if the VPC has an IPv6 block.
fn default_sg(vpc: &Vpc, id: &str) -> Sg {
    let mut egress = vec![SgRule { proto: SgProto::All, peer: Peer::Cidr(Cidr::parse("0.0.0.0/0")) }];
    if vpc.has_v6 {
        egress.push(SgRule { proto: SgProto::All, peer: Peer::Cidr(Cidr::parse("::/0")) });
    }
    Sg { ingress: vec![SgRule { proto: SgProto::All, peer: Peer::Group(id.to_string()) }], egress }
}

impl World {
    pub fn new(cfg: &Config) -> World {
        let mut vpcs = Vec::new();
        for v in &cfg.vpcs {
            let mut cidrs = Vec::new();
            if let Some(c) = &v.cidr_block {
                cidrs.push(Cidr::parse(c));
            }
            for a in &v.cidr_block_association_set {
                let c = Cidr::parse(&a.cidr_block);
                if !cidrs.contains(&c) {
                    cidrs.push(c);
                }
            }
            let mut has_v6 = false;
            for a in &v.ipv6_cidr_block_association_set {
                cidrs.push(Cidr::parse(&a.ipv6_cidr_block));
                has_v6 = true;
            }
            vpcs.push(Vpc { id: v.vpc_id.clone(), cidrs, has_v6 });
        }
        let vpc_index =
            |id: &str| vpcs.iter().position(|v| v.id == id).unwrap_or_else(|| panic!("oracle: unknown VPC {id}"));

        // Security groups, and each VPC's default SG (the one named `default`, or
        // the one AWS would have created).
        let mut sgs: HashMap<String, Sg> = HashMap::new();
        let mut default_sg_of: Vec<String> = Vec::new();
        for v in &vpcs {
            let named = cfg.security_groups.iter().find(|g| g.vpc_id == v.id && g.group_name == "default");
            match named {
                Some(g) => default_sg_of.push(g.group_id.clone()),
                None => {
                    let id = format!("(default SG of {})", v.id);
                    sgs.insert(id.clone(), default_sg(v, &id));
                    default_sg_of.push(id);
                }
            }
        }
        for g in &cfg.security_groups {
            sgs.insert(
                g.group_id.clone(),
                Sg { ingress: sg_rules(&g.ip_permissions), egress: sg_rules(&g.ip_permissions_egress) },
            );
        }

        // Subnets and their NACL: the one associated, else the VPC's default.
        let mut subnets = Vec::new();
        for s in &cfg.subnets {
            let vpc = vpc_index(&s.vpc_id);
            let assoc = cfg.network_acls.iter().find(|n| n.associations.iter().any(|a| a.subnet_id == s.subnet_id));
            let dflt = cfg.network_acls.iter().find(|n| n.vpc_id == s.vpc_id && n.is_default);
            let nacl = match assoc.or(dflt) {
                Some(n) => {
                    let mut entries: Vec<NaclEntry> = n.entries.iter().map(nacl_entry).collect();
                    entries.sort_by_key(|e| e.number);
                    Nacl { id: n.network_acl_id.clone(), entries }
                }
                None => default_nacl(&vpcs[vpc]),
            };
            subnets.push(Subnet { id: s.subnet_id.clone(), vpc, nacl });
        }

        let mut enis = Vec::new();
        for n in &cfg.network_interfaces {
            let subnet = subnets
                .iter()
                .position(|s| s.id == n.subnet_id)
                .unwrap_or_else(|| panic!("oracle: unknown subnet {}", n.subnet_id));
            let vpc = subnets[subnet].vpc;
            let mut addrs: Vec<IpAddr> = Vec::new();
            let mut add = |s: &str| {
                let a: IpAddr = s.parse().expect("oracle: bad address");
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            };
            if let Some(p) = &n.private_ip_address {
                add(p);
            }
            for p in &n.private_ip_addresses {
                add(&p.private_ip_address);
            }
            for p in &n.ipv6_addresses {
                add(&p.ipv6_address);
            }
            let groups = if n.groups.is_empty() {
                vec![default_sg_of[vpc].clone()]
            } else {
                n.groups.iter().map(|g| g.group_id.clone()).collect()
            };
            let ct = n.connection_tracking_configuration.unwrap_or_default();
            enis.push(Eni {
                id: n.network_interface_id.clone(),
                mac: parse_mac(&n.mac_address),
                port: None,
                subnet,
                vpc,
                addrs,
                groups,
                src_dst_check: n.source_dest_check,
                tcp_established: ct.tcp_established_timeout.unwrap_or(432_000) as u64,
                udp: ct.udp_timeout.unwrap_or(30) as u64,
                udp_stream: ct.udp_stream_timeout.unwrap_or(180) as u64,
            });
        }

        let mut ports = Vec::new();
        for (pi, p) in cfg.appliance.ports.iter().enumerate() {
            let mut list = Vec::new();
            for id in &p.network_interface_ids {
                let i =
                    enis.iter().position(|e: &Eni| &e.id == id).unwrap_or_else(|| panic!("oracle: unknown ENI {id}"));
                enis[i].port = Some(pi);
                list.push(i);
            }
            ports.push(Port {
                name: p.name.clone(),
                uplink: p.uplink,
                gateway: p.gateway_mac.as_deref().map(parse_mac),
                enis: list,
            });
        }

        let mut members: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for e in &enis {
            for g in &e.groups {
                members.entry(g.clone()).or_default().extend(e.addrs.iter().copied());
            }
        }

        World {
            router_mac: parse_mac(&cfg.appliance.router_mac),
            vpcs,
            subnets,
            enis,
            sgs,
            members,
            ports,
            max_entries: cfg.appliance.conntrack.max_entries as u64,
            max_entries_per_eni: cfg.appliance.conntrack.max_entries_per_eni as u64,
        }
    }

    pub fn port_index(&self, name: &str) -> usize {
        self.ports.iter().position(|p| p.name == name).unwrap_or_else(|| panic!("oracle: no port {name}"))
    }

    pub fn uplink(&self) -> Option<usize> {
        self.ports.iter().position(|p| p.uplink)
    }

    pub fn eni_by_id(&self, id: &str) -> Option<&Eni> {
        self.enis.iter().find(|e| e.id == id)
    }

    pub fn owner(&self, ip: IpAddr) -> Option<usize> {
        self.enis.iter().position(|e| e.addrs.contains(&ip))
    }

    pub fn in_vpc(&self, vpc: usize, ip: IpAddr) -> bool {
        self.vpcs[vpc].cidrs.iter().any(|c| c.contains(ip))
    }

    pub fn in_any_vpc(&self, ip: IpAddr) -> bool {
        (0..self.vpcs.len()).any(|v| self.in_vpc(v, ip))
    }

    /// Does one SG rule match a packet whose protocol is `proto`, destination port
    /// `dport` (TCP/UDP), ICMP type/code `icmp`, with `peer` the remote address?
    pub fn rule_matches(
        &self,
        r: &SgRule,
        proto: u8,
        dport: Option<u16>,
        icmp: Option<(u8, u8)>,
        peer: IpAddr,
    ) -> bool {
        let proto_ok = match r.proto {
            SgProto::All => true,
            SgProto::Tcp(lo, hi) => proto == 6 && dport.is_some_and(|p| lo <= p && p <= hi),
            SgProto::Udp(lo, hi) => proto == 17 && dport.is_some_and(|p| lo <= p && p <= hi),
            SgProto::Icmp(t, c) => proto == 1 && icmp_matches(t, c, icmp),
            SgProto::Icmpv6(t, c) => proto == 58 && icmp_matches(t, c, icmp),
            SgProto::Other(n) => proto == n,
        };
        proto_ok && self.peer_contains(&r.peer, peer)
    }

    pub fn peer_contains(&self, p: &Peer, ip: IpAddr) -> bool {
        match p {
            Peer::Cidr(c) => c.contains(ip),
            Peer::Group(g) => self.members.get(g).is_some_and(|m| m.contains(&ip)),
        }
    }

    /// Rules of all the ENI's groups for one direction, pooled (1.3).
    pub fn rules(&self, eni: &Eni, egress: bool) -> Vec<&SgRule> {
        let mut out = Vec::new();
        for g in &eni.groups {
            let sg = self.sgs.get(g).unwrap_or_else(|| panic!("oracle: unknown SG {g}"));
            out.extend(if egress { &sg.egress } else { &sg.ingress });
        }
        out
    }
}

pub fn icmp_matches(t: i64, c: i64, icmp: Option<(u8, u8)>) -> bool {
    match icmp {
        None => false,
        Some((ty, code)) => t == -1 || (t == ty as i64 && (c == -1 || c == code as i64)),
    }
}

impl Nacl {
    /// First match in rule-number order among the entries of this direction and the
    /// packet's family; none matching is the `*` deny (3.1, 3.2).
    pub fn allows(
        &self,
        egress: bool,
        proto: u8,
        dport: Option<u16>,
        icmp: Option<(u8, u8)>,
        peer: IpAddr,
    ) -> (bool, String) {
        for e in &self.entries {
            if e.egress != egress || !e.cidr.contains(peer) {
                continue;
            }
            let m = match e.proto {
                NaclProto::All => true,
                NaclProto::Tcp(lo, hi) => proto == 6 && dport.is_some_and(|p| lo <= p && p <= hi),
                NaclProto::Udp(lo, hi) => proto == 17 && dport.is_some_and(|p| lo <= p && p <= hi),
                NaclProto::Icmp(n, t, c) => proto == n && icmp_matches(t, c, icmp),
                NaclProto::Other(n) => proto == n,
            };
            if m {
                return (e.allow, format!("{} rule {}", self.id, e.number));
            }
        }
        (false, format!("{} rule *", self.id))
    }
}
