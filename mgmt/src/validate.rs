//! Validation: turns a config document into [`Checked`] (typed, canonical) or the EC2
//! error AWS would give, naming the offending field. Also fills in what AWS would
//! have created (a VPC's default NACL and default security group) and canonicalises
//! CIDRs and protocols the way describe calls print them.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::addr::{Family, Ip, Mac, Prefix};
use dataplane::tables::CtTimeouts;

use crate::error::{invalid, Ec2Error, Result};
use crate::model::*;

/// A security-group rule's protocol and ports, as AWS interprets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SgPorts {
    /// All ports (protocol -1, or a protocol without ports).
    All,
    Range(u16, u16),
    /// ICMP/ICMPv6 type and code; `None` = all.
    Icmp {
        ty: Option<u8>,
        code: Option<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Cidr(Prefix),
    /// Every private IPv4 and IPv6 address of every ENI that has the group.
    Group(String),
}

/// One security-group rule (one peer of one permission).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    pub id: String,
    pub egress: bool,
    /// `None` = all protocols.
    pub proto: Option<u8>,
    pub ports: SgPorts,
    pub peer: Peer,
    pub description: Option<String>,
}

impl SgRule {
    /// What makes two rules the same rule (spec: description does not count).
    pub fn identity(&self) -> (bool, Option<u8>, SgPorts, Peer) {
        (self.egress, self.proto, self.ports, self.peer.clone())
    }

    /// e.g. `tcp 80 from 0.0.0.0/0`.
    pub fn text(&self) -> String {
        let proto = proto_name(self.proto);
        let ports = match self.ports {
            SgPorts::All => String::new(),
            SgPorts::Range(a, b) if a == b => format!(" {a}"),
            SgPorts::Range(a, b) => format!(" {a}-{b}"),
            SgPorts::Icmp { ty, code } => format!(
                " type {} code {}",
                ty.map_or("all".into(), |t| t.to_string()),
                code.map_or("all".into(), |c| c.to_string())
            ),
        };
        let peer = match &self.peer {
            Peer::Cidr(p) => p.to_string(),
            Peer::Group(g) => g.clone(),
        };
        format!("{proto}{ports} {} {peer}", if self.egress { "to" } else { "from" })
    }
}

pub fn proto_name(p: Option<u8>) -> String {
    match p {
        None => "all".into(),
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(1) => "icmp".into(),
        Some(58) => "icmpv6".into(),
        Some(n) => format!("proto {n}"),
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub vpc: usize,
    pub rules: Vec<SgRule>,
}

/// A NACL entry's protocol and ports, as AWS interprets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaclPorts {
    All,
    Range(u16, u16),
    Icmp { ty: Option<u8>, code: Option<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclEntry {
    pub rule_number: u32,
    pub egress: bool,
    pub allow: bool,
    pub proto: Option<u8>,
    pub ports: NaclPorts,
    pub cidr: Prefix,
}

impl NaclEntry {
    pub fn text(&self) -> String {
        let ports = match self.ports {
            NaclPorts::All => String::new(),
            NaclPorts::Range(a, b) => format!(" {a}-{b}"),
            NaclPorts::Icmp { ty, code } => format!(
                " type {} code {}",
                ty.map_or("all".into(), |t| t.to_string()),
                code.map_or("all".into(), |c| c.to_string())
            ),
        };
        format!(
            "{} {} {}{} {}",
            self.rule_number,
            if self.allow { "allow" } else { "deny" },
            proto_name(self.proto),
            ports,
            self.cidr
        )
    }
}

#[derive(Clone, Debug)]
pub struct Nacl {
    pub id: String,
    pub vpc: usize,
    pub is_default: bool,
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug)]
pub struct VpcInfo {
    pub id: String,
    pub cidrs: Vec<Prefix>,
    pub owner: Option<String>,
    pub default_sg: usize,
    pub default_nacl: usize,
}

#[derive(Clone, Debug)]
pub struct SubnetInfo {
    pub id: String,
    pub vpc: usize,
    pub cidrs: Vec<Prefix>,
    pub nacl: usize,
    pub az: Option<String>,
    pub az_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EniInfo {
    pub id: String,
    pub vpc: usize,
    pub subnet: usize,
    pub mac: Mac,
    /// Primary first.
    pub ipv4: Vec<u32>,
    pub ipv6: Vec<u128>,
    pub groups: Vec<usize>,
    pub source_dest_check: bool,
    pub timeouts: CtTimeouts,
    pub owner: Option<String>,
    pub instance_id: Option<String>,
    pub port: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct PortInfo {
    pub name: String,
    pub interface: String,
    pub uplink: bool,
    pub gateway_mac: Mac,
    pub enis: Vec<usize>,
}

/// A valid configuration, typed and canonical.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The document in canonical form (what describe calls would print), with the
    /// defaults AWS creates filled in.
    pub config: Config,
    pub vpcs: Vec<VpcInfo>,
    pub subnets: Vec<SubnetInfo>,
    pub nacls: Vec<Nacl>,
    pub groups: Vec<Group>,
    pub enis: Vec<EniInfo>,
    pub ports: Vec<PortInfo>,
    pub router_mac: Mac,
    /// The flow logs, understood (format, destination, covered ENIs).
    pub flow_logs: Vec<crate::flowlogs::FlowLogPlan>,
}

impl Checked {
    pub fn group_index(&self, id: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.id == id)
    }
}

// ---------------------------------------------------------------------------------
// Small parsers

/// Parses an IPv4 or IPv6 CIDR (host bits allowed, cleared).
pub fn parse_cidr(s: &str, family: Family) -> Result<Prefix> {
    let malformed = || invalid(format!("CIDR block {s} is malformed"));
    let (addr, len) = s.split_once('/').ok_or_else(malformed)?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let len: u8 = len.parse().map_err(|_| malformed())?;
    let ip = match family {
        Family::V4 => Ip::v4(u32::from(addr.parse::<Ipv4Addr>().map_err(|_| malformed())?)),
        Family::V6 => Ip::v6(u128::from(addr.parse::<Ipv6Addr>().map_err(|_| malformed())?)),
    };
    if len > family.bits() {
        return Err(malformed());
    }
    Ok(Prefix::new(ip, len))
}

pub fn parse_ipv4(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

pub fn parse_ipv6(s: &str) -> Option<u128> {
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// `sg-`, `acl-`, ... followed by 8 or 17 lowercase hex digits, as EC2 issues them.
pub fn is_resource_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn check_id(s: &str, prefix: &str, code: &str, path: &str) -> Result<()> {
    if is_resource_id(s, prefix) {
        Ok(())
    } else {
        Err(Ec2Error::new(code, format!("Invalid id: \"{s}\" (expecting \"{prefix}-...\")")).at(path))
    }
}

/// A deterministic EC2-style id (`prefix-` + 17 hex digits) derived from `seed`.
pub fn derived_id(prefix: &str, seed: &str) -> String {
    let fnv = |basis: u64| seed.bytes().fold(basis, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    format!("{prefix}-{:016x}{:x}", a, b & 0xf)
}

/// Protocol as EC2 takes it: a name, a number 0-255, or -1 (all).
pub fn parse_protocol(s: &str) -> Result<Option<u8>> {
    match s.to_ascii_lowercase().as_str() {
        "-1" | "all" => Ok(None),
        "tcp" => Ok(Some(6)),
        "udp" => Ok(Some(17)),
        "icmp" => Ok(Some(1)),
        "icmpv6" => Ok(Some(58)),
        n => n
            .parse::<u8>()
            .ok()
            .filter(|_| !n.starts_with('+'))
            .map(Some)
            .ok_or_else(|| invalid(format!("Invalid value '{s}' for IP protocol. Unknown protocol."))),
    }
}

/// How describe-security-groups prints a protocol.
pub fn sg_protocol_string(p: Option<u8>) -> String {
    match p {
        None => "-1".into(),
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(1) => "icmp".into(),
        Some(58) => "icmpv6".into(),
        Some(n) => n.to_string(),
    }
}

/// AWS's port semantics for a security-group permission.
pub fn sg_ports(proto: Option<u8>, from: Option<i64>, to: Option<i64>) -> Result<SgPorts> {
    match proto {
        Some(6) | Some(17) => {
            let (f, t) = match (from, to) {
                (None, None) => {
                    return Err(Ec2Error::new("InvalidPermission.Malformed", "TCP/UDP port (-1) out of range"))
                }
                (Some(f), Some(t)) => (f, t),
                _ => {
                    return Err(invalid(
                        "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
                    ))
                }
            };
            for p in [f, t] {
                if !(0..=65535).contains(&p) {
                    return Err(Ec2Error::new(
                        "InvalidPermission.Malformed",
                        format!("TCP/UDP port ({p}) out of range"),
                    ));
                }
            }
            if f > t {
                return Err(invalid(format!("Invalid port range: FromPort ({f}) is greater than ToPort ({t})")));
            }
            Ok(SgPorts::Range(f as u16, t as u16))
        }
        Some(1) | Some(58) => {
            let (ty, code) = match (from, to) {
                (None, None) if proto == Some(58) => return Ok(SgPorts::Icmp { ty: None, code: None }),
                (Some(f), Some(t)) => (f, t),
                _ => {
                    return Err(invalid(
                        "Invalid value 'Must specify both from and to ports with ICMP.' for portRange.",
                    ))
                }
            };
            icmp_type_code(ty, code).map(|(ty, code)| SgPorts::Icmp { ty, code })
        }
        _ => Ok(SgPorts::All),
    }
}

fn icmp_type_code(ty: i64, code: i64) -> Result<(Option<u8>, Option<u8>)> {
    if !(-1..=255).contains(&ty) {
        return Err(invalid(format!("ICMP type ({ty}) out of range")));
    }
    if !(-1..=255).contains(&code) {
        return Err(invalid(format!("ICMP code ({code}) out of range")));
    }
    if ty == -1 && code != -1 {
        return Err(invalid(format!("ICMP code ({code}) must be -1 when the ICMP type is -1")));
    }
    Ok(((ty >= 0).then_some(ty as u8), (code >= 0).then_some(code as u8)))
}

const DESCRIPTION_CHARS: &str = "._-:/()#,@[]+=&;{}!$* ";

/// Rule and group descriptions: up to 255 characters from EC2's set.
pub fn check_description(d: &str, what: &str) -> Result<()> {
    if d.chars().count() > 255 || !d.chars().all(|c| c.is_ascii_alphanumeric() || DESCRIPTION_CHARS.contains(c)) {
        return Err(invalid(format!(
            "Invalid {what}. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The whole document

/// Validates `cfg`; on success returns it typed, with its canonical form.
pub fn check(cfg: &Config) -> Result<Checked> {
    let mut cfg = cfg.clone();
    let quotas = cfg.appliance.quotas;

    // VPCs
    let mut vpcs: Vec<VpcInfo> = Vec::new();
    let mut vpc_index: HashMap<String, usize> = HashMap::new();
    for (i, v) in cfg.vpcs.iter_mut().enumerate() {
        let path = format!("Vpcs[{i}]");
        check_id(&v.vpc_id, "vpc", "InvalidVpcId.Malformed", &path)?;
        if vpc_index.insert(v.vpc_id.clone(), i).is_some() {
            return Err(invalid(format!("Duplicate VPC id {}", v.vpc_id)).at(&path));
        }
        let mut cidrs = Vec::new();
        let mut texts: Vec<String> = v.cidr_block.iter().cloned().collect();
        texts.extend(v.cidr_block_association_set.iter().map(|a| a.cidr_block.clone()));
        for c in &texts {
            let p = parse_cidr(c, Family::V4).map_err(|e| e.at(&format!("{path}.CidrBlock")))?;
            if !(16..=28).contains(&p.len) {
                return Err(Ec2Error::new("InvalidVpc.Range", format!("The CIDR '{c}' is invalid.")).at(&path));
            }
            if !cidrs.contains(&p) {
                cidrs.push(p);
            }
        }
        for (j, a) in v.ipv6_cidr_block_association_set.iter_mut().enumerate() {
            let p = parse_cidr(&a.ipv6_cidr_block, Family::V6)
                .map_err(|e| e.at(&format!("{path}.Ipv6CidrBlockAssociationSet[{j}].Ipv6CidrBlock")))?;
            a.ipv6_cidr_block = p.to_string();
            cidrs.push(p);
        }
        if cidrs.is_empty() {
            return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter cidrBlock").at(&path));
        }
        if let Some(c) = &mut v.cidr_block {
            *c = parse_cidr(c, Family::V4)?.to_string();
        }
        for a in &mut v.cidr_block_association_set {
            a.cidr_block = parse_cidr(&a.cidr_block, Family::V4)?.to_string();
        }
        vpcs.push(VpcInfo { id: v.vpc_id.clone(), cidrs, owner: v.owner_id.clone(), default_sg: 0, default_nacl: 0 });
    }
    for (i, a) in vpcs.iter().enumerate() {
        for b in &vpcs[..i] {
            if a.cidrs.iter().any(|x| b.cidrs.iter().any(|y| x.overlaps(y))) {
                return Err(invalid(format!(
                    "VPC {} overlaps VPC {}: one appliance cannot route overlapping VPCs",
                    a.id, b.id
                ))
                .at(&format!("Vpcs[{i}]")));
            }
        }
    }
    let vpc_of = |id: &str, path: &str| -> Result<usize> {
        vpc_index
            .get(id)
            .copied()
            .ok_or_else(|| Ec2Error::new("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist")).at(path))
    };

    // Subnets
    let mut subnets: Vec<SubnetInfo> = Vec::new();
    let mut subnet_index: HashMap<String, usize> = HashMap::new();
    for (i, s) in cfg.subnets.iter_mut().enumerate() {
        let path = format!("Subnets[{i}]");
        check_id(&s.subnet_id, "subnet", "InvalidSubnetID.Malformed", &path)?;
        if subnet_index.insert(s.subnet_id.clone(), i).is_some() {
            return Err(invalid(format!("Duplicate subnet id {}", s.subnet_id)).at(&path));
        }
        let vpc = vpc_of(&s.vpc_id, &format!("{path}.VpcId"))?;
        let c4 = parse_cidr(&s.cidr_block, Family::V4).map_err(|e| e.at(&format!("{path}.CidrBlock")))?;
        s.cidr_block = c4.to_string();
        let mut cidrs = vec![c4];
        for (j, a) in s.ipv6_cidr_block_association_set.iter_mut().enumerate() {
            let p = parse_cidr(&a.ipv6_cidr_block, Family::V6)
                .map_err(|e| e.at(&format!("{path}.Ipv6CidrBlockAssociationSet[{j}].Ipv6CidrBlock")))?;
            a.ipv6_cidr_block = p.to_string();
            cidrs.push(p);
        }
        for c in &cidrs {
            let inside =
                vpcs[vpc].cidrs.iter().any(|v| v.family() == c.family() && v.len <= c.len && v.contains(c.addr));
            if !inside || (c.family() == Family::V4 && !(16..=28).contains(&c.len)) {
                return Err(Ec2Error::new("InvalidSubnet.Range", format!("The CIDR '{c}' is invalid.")).at(&path));
            }
        }
        for other in subnets.iter() {
            if other.vpc == vpc && other.cidrs.iter().any(|o| cidrs.iter().any(|c| c.overlaps(o))) {
                return Err(Ec2Error::new(
                    "InvalidSubnet.Conflict",
                    format!("The CIDR '{}' conflicts with another subnet", s.cidr_block),
                )
                .at(&path));
            }
        }
        subnets.push(SubnetInfo {
            id: s.subnet_id.clone(),
            vpc,
            cidrs,
            nacl: usize::MAX,
            az: s.availability_zone.clone(),
            az_id: s.availability_zone_id.clone(),
        });
    }
    let subnet_of = |id: &str, path: &str| -> Result<usize> {
        subnet_index.get(id).copied().ok_or_else(|| {
            Ec2Error::new("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist")).at(path)
        })
    };

    // Network ACLs (with the default NACL AWS creates for every VPC)
    for v in &vpcs {
        if !cfg.network_acls.iter().any(|n| n.vpc_id == v.id && n.is_default) {
            let has_v6 = v.cidrs.iter().any(|c| c.family() == Family::V6);
            cfg.network_acls.push(default_nacl(&v.id, has_v6, v.owner.clone()));
        }
    }
    let mut nacls: Vec<Nacl> = Vec::new();
    let mut nacl_ids: HashSet<String> = HashSet::new();
    let mut associated: HashMap<usize, usize> = HashMap::new();
    for (i, n) in cfg.network_acls.iter_mut().enumerate() {
        let path = format!("NetworkAcls[{i}]");
        check_id(&n.network_acl_id, "acl", "InvalidNetworkAclId.Malformed", &path)?;
        if !nacl_ids.insert(n.network_acl_id.clone()) {
            return Err(invalid(format!("Duplicate network ACL id {}", n.network_acl_id)).at(&path));
        }
        let vpc = vpc_of(&n.vpc_id, &format!("{path}.VpcId"))?;
        if n.is_default && nacls.iter().any(|x| x.vpc == vpc && x.is_default) {
            return Err(invalid(format!("VPC {} has more than one default network ACL", n.vpc_id)).at(&path));
        }
        let entries = check_nacl_entries(&mut n.entries, &quotas, &path)?;
        for (j, a) in n.associations.iter_mut().enumerate() {
            let apath = format!("{path}.Associations[{j}]");
            let s = subnet_of(&a.subnet_id, &format!("{apath}.SubnetId"))?;
            if subnets[s].vpc != vpc {
                return Err(invalid(format!(
                    "Subnet {} is in a different VPC than network ACL {}",
                    a.subnet_id, n.network_acl_id
                ))
                .at(&apath));
            }
            if associated.insert(s, nacls.len()).is_some() {
                return Err(
                    invalid(format!("Subnet {} is associated with more than one network ACL", a.subnet_id)).at(&apath)
                );
            }
            a.network_acl_id = n.network_acl_id.clone();
            if a.network_acl_association_id.is_empty() {
                a.network_acl_association_id = derived_id("aclassoc", &format!("{}/{}", n.network_acl_id, a.subnet_id));
            }
        }
        if n.is_default {
            vpcs[vpc].default_nacl = nacls.len();
        }
        nacls.push(Nacl { id: n.network_acl_id.clone(), vpc, is_default: n.is_default, entries });
    }
    for (vi, v) in vpcs.iter_mut().enumerate() {
        let count = nacls.iter().filter(|n| n.vpc == vi).count();
        if count as u32 > quotas.network_acls_per_vpc {
            return Err(Ec2Error::new(
                "NetworkAclLimitExceeded",
                format!("VPC {} has {count} network ACLs; the limit is {}", v.id, quotas.network_acls_per_vpc),
            ));
        }
        v.default_nacl = nacls.iter().position(|n| n.vpc == vi && n.is_default).expect("default NACL added above");
    }
    for (si, s) in subnets.iter_mut().enumerate() {
        s.nacl = associated.get(&si).copied().unwrap_or(vpcs[s.vpc].default_nacl);
    }

    // Security groups (with the default group AWS creates for every VPC)
    for v in &vpcs {
        if !cfg.security_groups.iter().any(|g| g.vpc_id == v.id && g.group_name == "default") {
            let has_v6 = v.cidrs.iter().any(|c| c.family() == Family::V6);
            cfg.security_groups.push(default_security_group(&v.id, has_v6, v.owner.clone()));
        }
    }
    let group_ids: HashMap<String, usize> =
        cfg.security_groups.iter().enumerate().map(|(i, g)| (g.group_id.clone(), i)).collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut names: HashSet<(usize, String)> = HashSet::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    for (i, g) in cfg.security_groups.iter_mut().enumerate() {
        let path = format!("SecurityGroups[{i}]");
        check_id(&g.group_id, "sg", "InvalidGroupId.Malformed", &path)?;
        if !seen_ids.insert(g.group_id.clone()) {
            return Err(invalid(format!("Duplicate security group id {}", g.group_id)).at(&path));
        }
        let vpc = vpc_of(&g.vpc_id, &format!("{path}.VpcId"))?;
        let name = g.group_name.trim_end().to_string();
        if name.is_empty() {
            return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter groupName").at(&path));
        }
        check_description(&name, "group name").map_err(|e| e.at(&format!("{path}.GroupName")))?;
        check_description(&g.description, "group description").map_err(|e| e.at(&format!("{path}.Description")))?;
        if name.starts_with("sg-") {
            return Err(
                invalid(format!("Group names may not be in the format sg-*: {name}")).at(&format!("{path}.GroupName"))
            );
        }
        if !names.insert((vpc, name.clone())) {
            return Err(Ec2Error::new(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{}'", g.vpc_id),
            )
            .at(&path));
        }
        g.group_name = name.clone();
        if name == "default" {
            vpcs[vpc].default_sg = i;
        }
        let mut rules = Vec::new();
        for (egress, perms) in [(false, &mut g.ip_permissions), (true, &mut g.ip_permissions_egress)] {
            let field = if egress { "IpPermissionsEgress" } else { "IpPermissions" };
            for (j, perm) in perms.iter_mut().enumerate() {
                let ppath = format!("{path}.{field}[{j}]");
                let home =
                    RuleHome { vpc_id: &g.vpc_id, owner_id: g.owner_id.as_deref().or(vpcs[vpc].owner.as_deref()) };
                let new = permission_rules_in(perm, egress, &group_ids, Some(&home), &ppath)?;
                rules.extend(new);
            }
        }
        // Duplicates: the same rule twice in one group (description does not count).
        let mut identities = HashSet::new();
        for r in &rules {
            if !identities.insert(r.identity()) {
                return Err(Ec2Error::new(
                    "InvalidPermission.Duplicate",
                    format!("the specified rule \"{}\" already exists", duplicate_text(r)),
                )
                .at(&path));
            }
        }
        // Quota: per direction and per IP family; a group reference counts for both.
        for egress in [false, true] {
            for fam in [Family::V4, Family::V6] {
                let counts = |r: &&SgRule| match &r.peer {
                    Peer::Cidr(p) => p.family() == fam,
                    Peer::Group(_) => true,
                };
                let n = rules.iter().filter(|r| r.egress == egress).filter(counts).count() as u32;
                if n > quotas.rules_per_security_group {
                    return Err(Ec2Error::new(
                        "RulesPerSecurityGroupLimitExceeded",
                        format!(
                            "The maximum number of rules per security group has been reached ({} {} rules for {:?}; limit {})",
                            n,
                            if egress { "outbound" } else { "inbound" },
                            fam,
                            quotas.rules_per_security_group
                        ),
                    )
                    .at(&path));
                }
            }
        }
        groups.push(Group { id: g.group_id.clone(), name, vpc, rules });
    }
    for (vi, v) in vpcs.iter().enumerate() {
        let count = groups.iter().filter(|g| g.vpc == vi).count();
        if count as u32 > quotas.security_groups_per_vpc {
            return Err(Ec2Error::new(
                "SecurityGroupLimitExceeded",
                format!("VPC {} has {count} security groups; the limit is {}", v.id, quotas.security_groups_per_vpc),
            ));
        }
    }
    assign_rule_ids(&mut groups, &cfg.security_group_rules);

    // Network interfaces
    let mut enis: Vec<EniInfo> = Vec::new();
    let mut eni_ids: HashMap<String, usize> = HashMap::new();
    let mut macs: HashSet<Mac> = HashSet::new();
    let mut addresses: HashMap<Ip, String> = HashMap::new();
    for (i, n) in cfg.network_interfaces.iter_mut().enumerate() {
        let path = format!("NetworkInterfaces[{i}]");
        check_id(&n.network_interface_id, "eni", "InvalidNetworkInterfaceId.Malformed", &path)?;
        if eni_ids.insert(n.network_interface_id.clone(), i).is_some() {
            return Err(invalid(format!("Duplicate network interface id {}", n.network_interface_id)).at(&path));
        }
        let subnet = subnet_of(&n.subnet_id, &format!("{path}.SubnetId"))?;
        let vpc = subnets[subnet].vpc;
        if n.vpc_id.is_empty() {
            n.vpc_id = vpcs[vpc].id.clone();
        } else if n.vpc_id != vpcs[vpc].id {
            return Err(
                invalid(format!("Subnet {} is not in VPC {}", n.subnet_id, n.vpc_id)).at(&format!("{path}.VpcId"))
            );
        }
        let mac =
            Mac::parse(&n.mac_address).filter(|m| !m.is_multicast() && *m != Mac::default()).ok_or_else(|| {
                invalid(format!("Invalid MAC address '{}'", n.mac_address)).at(&format!("{path}.MacAddress"))
            })?;
        if !macs.insert(mac) {
            return Err(invalid(format!("MAC address {} is used by another network interface", n.mac_address))
                .at(&format!("{path}.MacAddress")));
        }
        n.mac_address = mac.to_string();
        // Private IPv4 addresses, primary first.
        let mut v4: Vec<(u32, bool)> = Vec::new();
        for (j, p) in n.private_ip_addresses.iter().enumerate() {
            let a = parse_ipv4(&p.private_ip_address).ok_or_else(|| {
                invalid(format!("Invalid IPv4 address '{}'", p.private_ip_address))
                    .at(&format!("{path}.PrivateIpAddresses[{j}]"))
            })?;
            if !v4.iter().any(|x| x.0 == a) {
                v4.push((a, p.primary));
            }
        }
        if let Some(s) = &n.private_ip_address {
            let a = parse_ipv4(s).ok_or_else(|| {
                invalid(format!("Invalid IPv4 address '{s}'")).at(&format!("{path}.PrivateIpAddress"))
            })?;
            match v4.iter_mut().find(|x| x.0 == a) {
                Some(x) => x.1 = true,
                None => v4.insert(0, (a, true)),
            }
        }
        if v4.iter().filter(|x| x.1).count() > 1 {
            return Err(invalid("A network interface has exactly one primary private IPv4 address").at(&path));
        }
        v4.sort_by_key(|x| !x.1);
        let mut ipv4 = Vec::new();
        for (a, _) in &v4 {
            let ip = Ip::v4(*a);
            check_address_in_subnet(ip, &subnets[subnet], &path)?;
            if let Some(other) = addresses.insert(ip, n.network_interface_id.clone()) {
                return Err(
                    Ec2Error::new("InvalidIPAddress.InUse", format!("Address {ip} is in use by {other}")).at(&path)
                );
            }
            ipv4.push(*a);
        }
        let mut ipv6 = Vec::new();
        for (j, a) in n.ipv6_addresses.iter_mut().enumerate() {
            let v = parse_ipv6(&a.ipv6_address).ok_or_else(|| {
                invalid(format!("Invalid IPv6 address '{}'", a.ipv6_address)).at(&format!("{path}.Ipv6Addresses[{j}]"))
            })?;
            a.ipv6_address = Ipv6Addr::from(v).to_string();
            let ip = Ip::v6(v);
            check_address_in_subnet(ip, &subnets[subnet], &path)?;
            if let Some(other) = addresses.insert(ip, n.network_interface_id.clone()) {
                return Err(
                    Ec2Error::new("InvalidIPAddress.InUse", format!("Address {ip} is in use by {other}")).at(&path)
                );
            }
            ipv6.push(v);
        }
        if ipv4.is_empty() && ipv6.is_empty() {
            return Err(Ec2Error::new("MissingParameter", "A network interface needs at least one private IP address")
                .at(&path));
        }
        // Security groups: default group of the VPC when none is given.
        if n.groups.is_empty() {
            let d = &groups[vpcs[vpc].default_sg];
            n.groups.push(GroupIdentifier { group_id: d.id.clone(), group_name: Some(d.name.clone()) });
        }
        let mut gs = Vec::new();
        for (j, g) in n.groups.iter_mut().enumerate() {
            let gi = group_ids.get(&g.group_id).copied().filter(|&x| groups[x].vpc == vpc).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidGroup.NotFound",
                    format!("The security group '{}' does not exist in VPC '{}'", g.group_id, n.vpc_id),
                )
                .at(&format!("{path}.Groups[{j}]"))
            })?;
            if !gs.contains(&gi) {
                gs.push(gi);
            }
            g.group_name = Some(groups[gi].name.clone());
        }
        if gs.len() as u32 > quotas.security_groups_per_network_interface {
            return Err(Ec2Error::new(
                "SecurityGroupsPerInterfaceLimitExceeded",
                format!(
                    "The maximum number of security groups per interface has been reached ({} > {})",
                    gs.len(),
                    quotas.security_groups_per_network_interface
                ),
            )
            .at(&path));
        }
        let timeouts = check_timeouts(n.connection_tracking_configuration.as_ref(), &path)?;
        enis.push(EniInfo {
            id: n.network_interface_id.clone(),
            vpc,
            subnet,
            mac,
            ipv4,
            ipv6,
            groups: gs,
            source_dest_check: n.source_dest_check,
            timeouts,
            owner: n.owner_id.clone().or_else(|| vpcs[vpc].owner.clone()),
            instance_id: n.attachment.as_ref().and_then(|a| a.instance_id.clone()),
            port: None,
        });
    }

    // Appliance ports
    let a = &cfg.appliance;
    let router_mac = Mac::parse(&a.router_mac)
        .filter(|m| !m.is_multicast() && *m != Mac::default())
        .ok_or_else(|| invalid(format!("Invalid MAC address '{}'", a.router_mac)).at("Appliance.RouterMac"))?;
    crate::metrics_http::check_config(&a.api)?;
    if a.conntrack.max_entries == 0 || a.conntrack.max_entries_per_eni == 0 {
        return Err(invalid("Conntrack sizes must be at least 1").at("Appliance.Conntrack"));
    }
    let mut ports: Vec<PortInfo> = Vec::new();
    for (i, p) in a.ports.iter().enumerate() {
        let path = format!("Appliance.Ports[{i}]");
        if p.name.is_empty() || ports.iter().any(|q| q.name == p.name) {
            return Err(invalid(format!("Port name '{}' is empty or used twice", p.name)).at(&format!("{path}.Name")));
        }
        if p.interface.is_empty() || ports.iter().any(|q| q.interface == p.interface) {
            return Err(invalid(format!("Interface '{}' is empty or used by two ports", p.interface))
                .at(&format!("{path}.Interface")));
        }
        let gateway_mac = if p.uplink {
            if !p.network_interface_ids.is_empty() {
                return Err(invalid("An uplink port faces outside the VPC and lists no network interfaces")
                    .at(&format!("{path}.NetworkInterfaceIds")));
            }
            if ports.iter().any(|q| q.uplink) {
                return Err(invalid("At most one port may be the uplink").at(&format!("{path}.Uplink")));
            }
            let g = p.gateway_mac.as_deref().ok_or_else(|| {
                Ec2Error::new("MissingParameter", "An uplink port needs GatewayMac, the upstream router's MAC")
                    .at(&path)
            })?;
            Mac::parse(g)
                .ok_or_else(|| invalid(format!("Invalid MAC address '{g}'")).at(&format!("{path}.GatewayMac")))?
        } else {
            Mac::default()
        };
        let mut list = Vec::new();
        for (j, id) in p.network_interface_ids.iter().enumerate() {
            let e = eni_ids.get(id).copied().ok_or_else(|| {
                Ec2Error::new(
                    "InvalidNetworkInterfaceID.NotFound",
                    format!("The networkInterface ID '{id}' does not exist"),
                )
                .at(&format!("{path}.NetworkInterfaceIds[{j}]"))
            })?;
            if enis[e].port.is_some() {
                return Err(invalid(format!("Network interface {id} is listed on two ports"))
                    .at(&format!("{path}.NetworkInterfaceIds[{j}]")));
            }
            enis[e].port = Some(ports.len());
            list.push(e);
        }
        ports.push(PortInfo {
            name: p.name.clone(),
            interface: p.interface.clone(),
            uplink: p.uplink,
            gateway_mac,
            enis: list,
        });
    }

    let mut checked =
        Checked { config: cfg, vpcs, subnets, nacls, groups, enis, ports, router_mac, flow_logs: Vec::new() };
    checked.flow_logs = crate::flowlogs::plan(&checked)?;
    Ok(checked)
}

fn check_address_in_subnet(ip: Ip, s: &SubnetInfo, path: &str) -> Result<()> {
    let Some(c) = s.cidrs.iter().find(|c| c.contains(ip)) else {
        return Err(
            invalid(format!("Address {ip} does not fall within the subnet's address range ({})", s.id)).at(path)
        );
    };
    if ip.family == Family::V4 {
        // AWS reserves the first four addresses and the last one of every subnet.
        let (lo, hi) = c.range();
        if ip.bits < lo + 4 || ip.bits == hi {
            return Err(invalid(format!("Address {ip} is in subnet's reserved address range")).at(path));
        }
    }
    Ok(())
}

fn check_timeouts(c: Option<&ConnectionTrackingConfiguration>, path: &str) -> Result<CtTimeouts> {
    let mut t = CtTimeouts::default();
    let Some(c) = c else { return Ok(t) };
    let set = |v: Option<i64>, name: &str, lo: i64, hi: i64, slot: &mut u32| -> Result<()> {
        if let Some(v) = v {
            if !(lo..=hi).contains(&v) {
                return Err(invalid(format!("{name} must be between {lo} and {hi} seconds, got {v}"))
                    .at(&format!("{path}.ConnectionTrackingConfiguration.{name}")));
            }
            *slot = v as u32;
        }
        Ok(())
    };
    set(c.tcp_established_timeout, "TcpEstablishedTimeout", 60, 432_000, &mut t.tcp_established)?;
    set(c.udp_stream_timeout, "UdpStreamTimeout", 60, 180, &mut t.udp_stream)?;
    set(c.udp_timeout, "UdpTimeout", 30, 60, &mut t.udp)?;
    Ok(t)
}

/// The rules one permission stands for (one per peer), canonicalising it in place.
/// Every referenced group must exist (what `AuthorizeSecurityGroup*` requires).
pub fn permission_rules(
    perm: &mut IpPermission,
    egress: bool,
    group_ids: &HashMap<String, usize>,
    path: &str,
) -> Result<Vec<SgRule>> {
    permission_rules_in(perm, egress, group_ids, None, path)
}

/// The VPC and owner of the group a permission belongs to.
pub struct RuleHome<'a> {
    pub vpc_id: &'a str,
    pub owner_id: Option<&'a str>,
}

/// Does this pair say its group lives in another VPC or account (a peered VPC)? Such
/// a reference stays in the document when the group or the peering goes away: AWS
/// keeps the rule as "stale", and it matches nothing.
fn is_remote_pair(g: &UserIdGroupPair, home: &RuleHome) -> bool {
    let marked = |k: &str| g.extra.get(k).is_some_and(|v| !v.is_null());
    marked("VpcPeeringConnectionId")
        || marked("PeeringStatus")
        || g.vpc_id.as_deref().is_some_and(|v| v != home.vpc_id)
        || matches!((g.user_id.as_deref(), home.owner_id), (Some(u), Some(o)) if u != o)
}

/// [`permission_rules`] for a group of a whole document (`home`): there, a reference
/// to an unknown group is kept (stale, matching nothing) when the pair says the group
/// is in another VPC or account; anywhere else it is `InvalidGroup.NotFound`.
pub fn permission_rules_in(
    perm: &mut IpPermission,
    egress: bool,
    group_ids: &HashMap<String, usize>,
    home: Option<&RuleHome>,
    path: &str,
) -> Result<Vec<SgRule>> {
    let proto = parse_protocol(&perm.ip_protocol).map_err(|e| e.at(&format!("{path}.IpProtocol")))?;
    let ports = sg_ports(proto, perm.from_port, perm.to_port).map_err(|e| e.at(path))?;
    perm.ip_protocol = sg_protocol_string(proto);
    let peers =
        perm.ip_ranges.len() + perm.ipv6_ranges.len() + perm.user_id_group_pairs.len() + perm.prefix_list_ids.len();
    if peers == 0 {
        return Err(Ec2Error::new(
            "MissingParameter",
            "Missing source specification: include source security group or CIDR information",
        )
        .at(path));
    }
    if let Some(pl) = perm.prefix_list_ids.first() {
        return Err(invalid(format!(
            "Prefix list {} cannot be used: vpcgate has no managed prefix lists; list the CIDRs instead",
            pl.prefix_list_id
        ))
        .at(&format!("{path}.PrefixListIds[0]")));
    }
    let mut out = Vec::new();
    let rule =
        |peer: Peer, description: Option<String>| SgRule { id: String::new(), egress, proto, ports, peer, description };
    for (j, r) in perm.ip_ranges.iter_mut().enumerate() {
        let rpath = format!("{path}.IpRanges[{j}]");
        let p = parse_cidr(&r.cidr_ip, Family::V4).map_err(|e| e.at(&format!("{rpath}.CidrIp")))?;
        r.cidr_ip = p.to_string();
        if let Some(d) = &r.description {
            check_description(d, "rule description").map_err(|e| e.at(&rpath))?;
        }
        out.push(rule(Peer::Cidr(p), r.description.clone()));
    }
    for (j, r) in perm.ipv6_ranges.iter_mut().enumerate() {
        let rpath = format!("{path}.Ipv6Ranges[{j}]");
        let p = parse_cidr(&r.cidr_ipv6, Family::V6).map_err(|e| e.at(&format!("{rpath}.CidrIpv6")))?;
        r.cidr_ipv6 = p.to_string();
        if let Some(d) = &r.description {
            check_description(d, "rule description").map_err(|e| e.at(&rpath))?;
        }
        out.push(rule(Peer::Cidr(p), r.description.clone()));
    }
    for (j, g) in perm.user_id_group_pairs.iter().enumerate() {
        let rpath = format!("{path}.UserIdGroupPairs[{j}]");
        let Some(id) = &g.group_id else {
            return Err(Ec2Error::new("MissingParameter", "A group pair needs GroupId").at(&rpath));
        };
        if !is_resource_id(id, "sg") {
            return Err(Ec2Error::new(
                "InvalidGroupId.Malformed",
                format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
            )
            .at(&rpath));
        }
        if !group_ids.contains_key(id) && !home.is_some_and(|h| is_remote_pair(g, h)) {
            return Err(
                Ec2Error::new("InvalidGroup.NotFound", format!("The security group '{id}' does not exist")).at(&rpath)
            );
        }
        if let Some(d) = &g.description {
            check_description(d, "rule description").map_err(|e| e.at(&rpath))?;
        }
        out.push(rule(Peer::Group(id.clone()), g.description.clone()));
    }
    Ok(out)
}

/// EC2's duplicate message text: `peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW`.
pub fn duplicate_text(r: &SgRule) -> String {
    let peer = match &r.peer {
        Peer::Cidr(p) => p.to_string(),
        Peer::Group(g) => g.clone(),
    };
    let proto = match r.proto {
        None => "ALL".to_string(),
        Some(p) => proto_name(Some(p)).to_uppercase(),
    };
    let (from, to) = ports_pair(r.ports);
    format!("peer: {peer}, {proto}, from port: {from}, to port: {to}, ALLOW")
}

/// `FromPort`/`ToPort` as describe calls print them (-1 for "all").
pub fn ports_pair(ports: SgPorts) -> (i64, i64) {
    match ports {
        SgPorts::All => (-1, -1),
        SgPorts::Range(a, b) => (a as i64, b as i64),
        SgPorts::Icmp { ty, code } => (ty.map_or(-1, |t| t as i64), code.map_or(-1, |c| c as i64)),
    }
}

/// Rule IDs: kept from `SecurityGroupRules` when the document carries them, otherwise
/// derived from the rule itself so they are stable across restarts.
fn assign_rule_ids(groups: &mut [Group], known: &[SecurityGroupRule]) {
    let mut by_identity: HashMap<(String, bool, Option<u8>, SgPorts, Peer), String> = HashMap::new();
    for k in known {
        let Ok(proto) = parse_protocol(&k.ip_protocol) else {
            continue;
        };
        let Ok(ports) = sg_ports(proto, k.from_port, k.to_port) else {
            continue;
        };
        let peer = if let Some(c) = &k.cidr_ipv4 {
            parse_cidr(c, Family::V4).ok().map(Peer::Cidr)
        } else if let Some(c) = &k.cidr_ipv6 {
            parse_cidr(c, Family::V6).ok().map(Peer::Cidr)
        } else {
            k.referenced_group_info.as_ref().and_then(|r| r.group_id.clone()).map(Peer::Group)
        };
        if let Some(peer) = peer {
            by_identity.insert((k.group_id.clone(), k.is_egress, proto, ports, peer), k.security_group_rule_id.clone());
        }
    }
    for g in groups {
        for r in &mut g.rules {
            let key = (g.id.clone(), r.egress, r.proto, r.ports, r.peer.clone());
            r.id = by_identity
                .get(&key)
                .cloned()
                .unwrap_or_else(|| derived_id("sgr", &format!("{}|{:?}", g.id, r.identity())));
        }
    }
}

fn check_nacl_entries(
    entries: &mut Vec<NetworkAclEntry>,
    quotas: &crate::model::Quotas,
    path: &str,
) -> Result<Vec<NaclEntry>> {
    // Describe output carries the `*` deny entries (32767 IPv4, 32768 IPv6): they
    // are implicit here, so drop them (and refuse anything else numbered like them).
    entries.retain(|e| !is_default_deny(e));
    let mut out = Vec::new();
    let mut numbers = HashSet::new();
    for (i, e) in entries.iter_mut().enumerate() {
        let epath = format!("{path}.Entries[{i}]");
        nacl_rule_number(e.rule_number).map_err(|err| err.at(&format!("{epath}.RuleNumber")))?;
        if !numbers.insert((e.rule_number, e.egress)) {
            return Err(Ec2Error::new(
                "NetworkAclEntryAlreadyExists",
                format!("The network acl entry identified by {} already exists.", e.rule_number),
            )
            .at(&epath));
        }
        let entry = nacl_entry(e).map_err(|err| err.at(&epath))?;
        out.push(entry);
    }
    for egress in [false, true] {
        for fam in [Family::V4, Family::V6] {
            // The quota counts the default deny rule too.
            let n = out.iter().filter(|e| e.egress == egress && e.cidr.family() == fam).count() as u32 + 1;
            if n > quotas.network_acl_entries_per_acl {
                return Err(Ec2Error::new(
                    "NetworkAclEntryLimitExceeded",
                    format!(
                        "The maximum number of network ACL entries has been reached ({} {} {:?} entries with the default deny; limit {})",
                        n,
                        if egress { "egress" } else { "ingress" },
                        fam,
                        quotas.network_acl_entries_per_acl
                    ),
                )
                .at(path));
            }
        }
    }
    Ok(out)
}

/// A NACL entry's rule number: 1-32766 (32767 and up are AWS's).
pub fn nacl_rule_number(n: i64) -> Result<()> {
    if !(1..=32766).contains(&n) {
        return Err(invalid(format!("Invalid value '{n}' for ruleNumber. Must be between 1 and 32766")));
    }
    Ok(())
}

fn is_default_deny(e: &NetworkAclEntry) -> bool {
    let all = parse_protocol(&e.protocol).ok() == Some(None) && e.rule_action == "deny";
    (e.rule_number == 32767 && e.cidr_block.as_deref() == Some("0.0.0.0/0") && all)
        || (e.rule_number == 32768 && e.ipv6_cidr_block.as_deref() == Some("::/0") && all)
}

/// Validates and canonicalises one NACL entry (protocol as a number, CIDR canonical).
pub fn nacl_entry(e: &mut NetworkAclEntry) -> Result<NaclEntry> {
    let proto = parse_protocol(&e.protocol).map_err(|err| err.at("Protocol"))?;
    e.protocol = proto.map_or("-1".into(), |p| p.to_string());
    let allow = match e.rule_action.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        other => return Err(invalid(format!("Invalid value '{other}' for ruleAction. Must be allow or deny"))),
    };
    e.rule_action = if allow { "allow".into() } else { "deny".into() };
    let cidr = match (&e.cidr_block, &e.ipv6_cidr_block) {
        (Some(c), None) => parse_cidr(c, Family::V4)?,
        (None, Some(c)) => parse_cidr(c, Family::V6)?,
        (None, None) => {
            return Err(Ec2Error::new(
                "MissingParameter",
                "The request must contain the parameter cidrBlock or ipv6CidrBlock",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "Specify either cidrBlock or ipv6CidrBlock, not both",
            ))
        }
    };
    match cidr.family() {
        Family::V4 => e.cidr_block = Some(cidr.to_string()),
        Family::V6 => e.ipv6_cidr_block = Some(cidr.to_string()),
    }
    let ports = match proto {
        Some(6) | Some(17) => {
            let Some(pr) = &e.port_range else {
                return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter portRange"));
            };
            let (Some(f), Some(t)) = (pr.from, pr.to) else {
                return Err(invalid(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
                ));
            };
            for p in [f, t] {
                if !(0..=65535).contains(&p) {
                    return Err(invalid(format!("TCP/UDP port ({p}) out of range")));
                }
            }
            if f > t {
                return Err(invalid(format!("Invalid port range: From ({f}) is greater than To ({t})")));
            }
            NaclPorts::Range(f as u16, t as u16)
        }
        Some(1) => icmp_entry(e)?,
        Some(58) if cidr.family() == Family::V6 => icmp_entry(e)?,
        _ => NaclPorts::All,
    };
    Ok(NaclEntry { rule_number: e.rule_number as u32, egress: e.egress, allow, proto, ports, cidr })
}

fn icmp_entry(e: &NetworkAclEntry) -> Result<NaclPorts> {
    let Some(tc) = &e.icmp_type_code else {
        return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter icmpTypeCode"));
    };
    let (Some(ty), Some(code)) = (tc.r#type, tc.code) else {
        return Err(invalid("Invalid value 'Must specify both type and code with ICMP.' for icmpTypeCode."));
    };
    let (ty, code) = icmp_type_code(ty, code)?;
    Ok(NaclPorts::Icmp { ty, code })
}

/// The default NACL AWS creates: allow everything both ways (IPv6 too when the VPC
/// has an IPv6 block), then the implicit `*` deny.
pub fn default_nacl(vpc_id: &str, ipv6: bool, owner: Option<String>) -> NetworkAcl {
    let mut entries = Vec::new();
    for egress in [false, true] {
        entries.push(NetworkAclEntry {
            rule_number: 100,
            protocol: "-1".into(),
            rule_action: "allow".into(),
            egress,
            cidr_block: Some("0.0.0.0/0".into()),
            ..Default::default()
        });
        if ipv6 {
            entries.push(NetworkAclEntry {
                rule_number: 101,
                protocol: "-1".into(),
                rule_action: "allow".into(),
                egress,
                ipv6_cidr_block: Some("::/0".into()),
                ..Default::default()
            });
        }
    }
    NetworkAcl {
        network_acl_id: derived_id("acl", &format!("default-nacl/{vpc_id}")),
        vpc_id: vpc_id.into(),
        is_default: true,
        entries,
        associations: Vec::new(),
        owner_id: owner,
        tags: Vec::new(),
        extra: Extra::new(),
    }
}

/// The default security group AWS creates: all inbound from its own members, all
/// outbound to 0.0.0.0/0 (and ::/0 when the VPC has IPv6).
pub fn default_security_group(vpc_id: &str, ipv6: bool, owner: Option<String>) -> SecurityGroup {
    let id = derived_id("sg", &format!("default-sg/{vpc_id}"));
    let mut egress = IpPermission { ip_protocol: "-1".into(), ..Default::default() };
    egress.ip_ranges.push(IpRange { cidr_ip: "0.0.0.0/0".into(), description: None });
    if ipv6 {
        egress.ipv6_ranges.push(Ipv6Range { cidr_ipv6: "::/0".into(), description: None });
    }
    let mut ingress = IpPermission { ip_protocol: "-1".into(), ..Default::default() };
    ingress.user_id_group_pairs.push(UserIdGroupPair {
        group_id: Some(id.clone()),
        user_id: owner.clone(),
        ..Default::default()
    });
    SecurityGroup {
        group_id: id,
        group_name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.into(),
        owner_id: owner,
        ip_permissions: vec![ingress],
        ip_permissions_egress: vec![egress],
        tags: Vec::new(),
        extra: Extra::new(),
    }
}
