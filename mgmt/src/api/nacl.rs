//! Network ACL actions. Describe output is EC2's: entries with the `*` deny rules
//! (32767 for IPv4, 32768 for IPv6 in VPCs with IPv6), egress first, by rule number;
//! every subnet listed in the associations of its NACL (a subnet the config does not
//! associate belongs to its VPC's default NACL, with a stable association id).

use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, Filter};
use super::ids::new_id;
use super::{decode, lookup, tags_for, Outcome, TagSpecification};
use crate::error::{invalid, Ec2Error, Result};
use crate::model::{IcmpTypeCode, NetworkAcl, NetworkAclAssociation, NetworkAclEntry, PortRange};
use crate::validate::{derived_id, is_resource_id, nacl_entry, nacl_rule_number, Checked};

/// The index (in the config and in `Checked::nacls`) of a NACL named by id.
pub fn find_nacl(c: &Checked, id: &str) -> Result<usize> {
    lookup(id, "acl", "InvalidNetworkAclId.Malformed", "InvalidNetworkAclID.NotFound", "network ACL", |id| {
        c.config.network_acls.iter().position(|n| n.network_acl_id == id)
    })
}

fn deny_all(egress: bool, ipv6: bool) -> NetworkAclEntry {
    NetworkAclEntry {
        rule_number: if ipv6 { 32768 } else { 32767 },
        protocol: "-1".into(),
        rule_action: "deny".into(),
        egress,
        cidr_block: (!ipv6).then(|| "0.0.0.0/0".into()),
        ipv6_cidr_block: ipv6.then(|| "::/0".into()),
        ..Default::default()
    }
}

/// NACL `i` as describe-network-acls prints it.
pub fn describe_view(c: &Checked, i: usize) -> NetworkAcl {
    let mut n = c.config.network_acls[i].clone();
    let vpc = c.nacls[i].vpc;
    let ipv6 = c.vpcs[vpc].cidrs.iter().any(|p| p.family() == dataplane::addr::Family::V6);
    for egress in [true, false] {
        n.entries.push(deny_all(egress, false));
        if ipv6 {
            n.entries.push(deny_all(egress, true));
        }
    }
    n.entries.sort_by_key(|e| (!e.egress, e.rule_number));
    if n.is_default {
        // Subnets without an explicit association use the default NACL; EC2 lists them.
        for s in c.subnets.iter().filter(|s| s.vpc == vpc && s.nacl == i) {
            if !n.associations.iter().any(|a| a.subnet_id == s.id) {
                n.associations.push(NetworkAclAssociation {
                    network_acl_association_id: derived_id("aclassoc", &format!("{}/{}", n.network_acl_id, s.id)),
                    network_acl_id: n.network_acl_id.clone(),
                    subnet_id: s.id.clone(),
                });
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------------
// DescribeNetworkAcls

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeNetworkAcls {
    #[serde(default)]
    network_acl_ids: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const NACL_FILTERS: &[&str] = &[
    "network-acl-id",
    "vpc-id",
    "default",
    "owner-id",
    "association.association-id",
    "association.network-acl-id",
    "association.subnet-id",
    "entry.cidr",
    "entry.ipv6-cidr",
    "entry.egress",
    "entry.protocol",
    "entry.rule-action",
    "entry.rule-number",
    "entry.port-range.from",
    "entry.port-range.to",
    "entry.icmp.type",
    "entry.icmp.code",
];

fn nacl_values(n: &NetworkAcl, name: &str) -> Vec<String> {
    let entries = |f: &dyn Fn(&NetworkAclEntry) -> Option<String>| n.entries.iter().filter_map(f).collect();
    match name {
        "network-acl-id" => filter::s(&n.network_acl_id),
        "vpc-id" => filter::s(&n.vpc_id),
        "default" => filter::b(n.is_default),
        "owner-id" => filter::opt(&n.owner_id),
        "association.association-id" => n.associations.iter().map(|a| a.network_acl_association_id.clone()).collect(),
        "association.network-acl-id" => n.associations.iter().map(|a| a.network_acl_id.clone()).collect(),
        "association.subnet-id" => n.associations.iter().map(|a| a.subnet_id.clone()).collect(),
        "entry.cidr" => entries(&|e| e.cidr_block.clone()),
        "entry.ipv6-cidr" => entries(&|e| e.ipv6_cidr_block.clone()),
        "entry.egress" => entries(&|e| Some(e.egress.to_string())),
        "entry.protocol" => entries(&|e| Some(e.protocol.clone())),
        "entry.rule-action" => entries(&|e| Some(e.rule_action.clone())),
        "entry.rule-number" => entries(&|e| Some(e.rule_number.to_string())),
        "entry.port-range.from" => entries(&|e| e.port_range.as_ref().and_then(|p| p.from).map(|v| v.to_string())),
        "entry.port-range.to" => entries(&|e| e.port_range.as_ref().and_then(|p| p.to).map(|v| v.to_string())),
        "entry.icmp.type" => entries(&|e| e.icmp_type_code.as_ref().and_then(|p| p.r#type).map(|v| v.to_string())),
        "entry.icmp.code" => entries(&|e| e.icmp_type_code.as_ref().and_then(|p| p.code).map(|v| v.to_string())),
        _ => Vec::new(),
    }
}

pub fn describe_network_acls(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeNetworkAcls = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, NACL_FILTERS)?;
    for id in &r.network_acl_ids {
        find_nacl(c, id)?;
    }
    let acls: Vec<NetworkAcl> = (0..c.config.network_acls.len())
        .map(|i| describe_view(c, i))
        .filter(|n| r.network_acl_ids.is_empty() || r.network_acl_ids.contains(&n.network_acl_id))
        .filter(|n| filter::matches(&r.filters, &n.tags, |name| nacl_values(n, name)))
        .collect();
    Ok(Outcome::read(json!({ "NetworkAcls": acls })))
}

// ---------------------------------------------------------------------------------
// CreateNetworkAcl / DeleteNetworkAcl

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateNetworkAcl {
    vpc_id: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_network_acl(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: CreateNetworkAcl = decode(req)?;
    let _ = r.dry_run;
    let vpc_id =
        r.vpc_id.ok_or_else(|| Ec2Error::new("MissingParameter", "The request must contain the parameter vpcId"))?;
    let vpc = super::vpc::find_vpc(c, &vpc_id)?;
    let tags = tags_for(&r.tag_specifications, "network-acl")?;
    let id = new_id("acl", |id| c.config.network_acls.iter().any(|n| n.network_acl_id == id));
    let mut next = c.config.clone();
    next.network_acls.push(NetworkAcl {
        network_acl_id: id.clone(),
        vpc_id,
        is_default: false,
        entries: Vec::new(),
        associations: Vec::new(),
        owner_id: c.vpcs[vpc].owner.clone(),
        tags,
        extra: Default::default(),
    });
    let token = r.client_token;
    Ok(Outcome::write_then(next, move |after| {
        let i = after.config.network_acls.iter().position(|n| n.network_acl_id == id).expect("NACL kept");
        let mut v = json!({ "NetworkAcl": describe_view(after, i) });
        if let Some(t) = token {
            v["ClientToken"] = json!(t);
        }
        v
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNetworkAcl {
    network_acl_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn required_acl_id(id: Option<String>) -> Result<String> {
    id.ok_or_else(|| Ec2Error::new("MissingParameter", "The request must contain the parameter networkAclId"))
}

pub fn delete_network_acl(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DeleteNetworkAcl = decode(req)?;
    let _ = r.dry_run;
    let id = required_acl_id(r.network_acl_id)?;
    let i = find_nacl(c, &id)?;
    let n = &c.config.network_acls[i];
    if n.is_default {
        return Err(invalid(format!("cannot delete default network ACL {id}")));
    }
    if !n.associations.is_empty() {
        return Err(Ec2Error::new(
            "DependencyViolation",
            format!("The networkAcl '{id}' has dependencies and cannot be deleted."),
        ));
    }
    let mut next = c.config.clone();
    next.network_acls.remove(i);
    Ok(Outcome::write(next, json!({})))
}

// ---------------------------------------------------------------------------------
// Entries

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EntryRequest {
    network_acl_id: Option<String>,
    rule_number: Option<i64>,
    protocol: Option<String>,
    rule_action: Option<String>,
    egress: Option<bool>,
    cidr_block: Option<String>,
    ipv6_cidr_block: Option<String>,
    port_range: Option<PortRange>,
    icmp_type_code: Option<IcmpTypeCode>,
    #[serde(default)]
    dry_run: bool,
}

fn missing(name: &str) -> Ec2Error {
    Ec2Error::new("MissingParameter", format!("The request must contain the parameter {name}"))
}

impl EntryRequest {
    /// The entry asked for, validated on its own (the whole NACL is validated later).
    fn entry(&self) -> Result<NetworkAclEntry> {
        let rule_number = self.rule_number.ok_or_else(|| missing("ruleNumber"))?;
        nacl_rule_number(rule_number)?;
        let mut e = NetworkAclEntry {
            rule_number,
            protocol: self.protocol.clone().ok_or_else(|| missing("protocol"))?,
            rule_action: self.rule_action.clone().ok_or_else(|| missing("ruleAction"))?,
            egress: self.egress.ok_or_else(|| missing("egress"))?,
            cidr_block: self.cidr_block.clone(),
            ipv6_cidr_block: self.ipv6_cidr_block.clone(),
            port_range: self.port_range.clone(),
            icmp_type_code: self.icmp_type_code.clone(),
        };
        nacl_entry(&mut e)?;
        Ok(e)
    }
}

fn entry_not_found(id: &str, number: i64, egress: bool) -> Ec2Error {
    Ec2Error::new(
        "InvalidNetworkAclEntry.NotFound",
        format!(
            "The network acl entry identified by {number} ({}) does not exist in network ACL {id}",
            if egress { "egress" } else { "ingress" }
        ),
    )
}

pub fn create_network_acl_entry(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: EntryRequest = decode(req)?;
    let _ = r.dry_run;
    let i = find_nacl(c, &required_acl_id(r.network_acl_id.clone())?)?;
    let e = r.entry()?;
    let mut next = c.config.clone();
    let entries = &mut next.network_acls[i].entries;
    if entries.iter().any(|x| x.rule_number == e.rule_number && x.egress == e.egress) {
        return Err(Ec2Error::new(
            "NetworkAclEntryAlreadyExists",
            format!("The network acl entry identified by {} already exists.", e.rule_number),
        ));
    }
    entries.push(e);
    Ok(Outcome::write(next, json!({})))
}

pub fn replace_network_acl_entry(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: EntryRequest = decode(req)?;
    let _ = r.dry_run;
    let id = required_acl_id(r.network_acl_id.clone())?;
    let i = find_nacl(c, &id)?;
    let e = r.entry()?;
    let mut next = c.config.clone();
    let entries = &mut next.network_acls[i].entries;
    let at = entries
        .iter()
        .position(|x| x.rule_number == e.rule_number && x.egress == e.egress)
        .ok_or_else(|| entry_not_found(&id, e.rule_number, e.egress))?;
    entries[at] = e;
    Ok(Outcome::write(next, json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteEntry {
    network_acl_id: Option<String>,
    rule_number: Option<i64>,
    egress: Option<bool>,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_network_acl_entry(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DeleteEntry = decode(req)?;
    let _ = r.dry_run;
    let id = required_acl_id(r.network_acl_id)?;
    let i = find_nacl(c, &id)?;
    let number = r.rule_number.ok_or_else(|| missing("ruleNumber"))?;
    let egress = r.egress.ok_or_else(|| missing("egress"))?;
    let mut next = c.config.clone();
    let entries = &mut next.network_acls[i].entries;
    let at = entries
        .iter()
        .position(|x| x.rule_number == number && x.egress == egress)
        .ok_or_else(|| entry_not_found(&id, number, egress))?;
    entries.remove(at);
    Ok(Outcome::write(next, json!({})))
}

// ---------------------------------------------------------------------------------
// ReplaceNetworkAclAssociation

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReplaceAssociation {
    association_id: Option<String>,
    network_acl_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn replace_network_acl_association(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: ReplaceAssociation = decode(req)?;
    let _ = r.dry_run;
    let assoc = r.association_id.ok_or_else(|| missing("associationId"))?;
    let target = find_nacl(c, &required_acl_id(r.network_acl_id)?)?;
    if !is_resource_id(&assoc, "aclassoc") {
        return Err(invalid(format!("Invalid id: \"{assoc}\" (expecting \"aclassoc-...\")")));
    }
    let subnet = (0..c.config.network_acls.len())
        .flat_map(|i| describe_view(c, i).associations)
        .find(|a| a.network_acl_association_id == assoc)
        .map(|a| a.subnet_id)
        .ok_or_else(|| {
            Ec2Error::new("InvalidAssociationID.NotFound", format!("The association ID '{assoc}' does not exist"))
        })?;
    let target_doc = &c.config.network_acls[target];
    let subnet_vpc = &c.vpcs[c.subnets.iter().find(|s| s.id == subnet).expect("associated subnet exists").vpc].id;
    if &target_doc.vpc_id != subnet_vpc {
        return Err(invalid(format!(
            "Network ACL {} and subnet {subnet} belong to different networks",
            target_doc.network_acl_id
        )));
    }
    let new = new_id("aclassoc", |id| {
        (0..c.config.network_acls.len())
            .any(|i| describe_view(c, i).associations.iter().any(|a| a.network_acl_association_id == id))
    });
    let mut next = c.config.clone();
    for n in &mut next.network_acls {
        n.associations.retain(|a| a.subnet_id != subnet);
    }
    let t = &mut next.network_acls[target];
    t.associations.push(NetworkAclAssociation {
        network_acl_association_id: new.clone(),
        network_acl_id: t.network_acl_id.clone(),
        subnet_id: subnet,
    });
    Ok(Outcome::write(next, json!({ "NewAssociationId": new })))
}
