//! Security-group actions. A group's rules are edited as a list of [`SgRule`]s (what
//! validation made of its permissions, with their ids) and written back as
//! describe-security-groups permissions grouped by protocol and ports, as EC2 prints
//! them; every rule id is kept in the config's `SecurityGroupRules`.

use std::collections::HashMap;

use dataplane::addr::Family;
use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, Filter};
use super::ids::new_id;
use super::{decode, tags_for, Outcome, TagSpecification};
use crate::error::{invalid, Ec2Error, Result};
use crate::model::{
    Config, IpPermission, IpRange, Ipv6Range, PrefixListId, ReferencedGroupInfo, SecurityGroup, SecurityGroupRule,
    UserIdGroupPair,
};
use crate::validate::{
    default_security_group, duplicate_text, is_resource_id, permission_rules, ports_pair, sg_protocol_string, Checked,
    Peer, SgPorts, SgRule,
};

// ---------------------------------------------------------------------------------
// Lookups and the rule <-> permission conversion

/// The index of a group named by id (or by name), with EC2's errors.
pub fn find_group(c: &Checked, id: Option<&str>, name: Option<&str>) -> Result<usize> {
    match (id, name) {
        (Some(id), _) => {
            super::lookup(id, "sg", "InvalidGroupId.Malformed", "InvalidGroup.NotFound", "security group", |id| {
                c.config.security_groups.iter().position(|g| g.group_id == id)
            })
            .map_err(|e| {
                if e.code == "InvalidGroup.NotFound" {
                    Ec2Error::new(&e.code, format!("The security group '{id}' does not exist"))
                } else {
                    e
                }
            })
        }
        (None, Some(name)) => c.config.security_groups.iter().position(|g| g.group_name == name).ok_or_else(|| {
            Ec2Error::new("InvalidGroup.NotFound", format!("The security group '{name}' does not exist"))
        }),
        (None, None) => {
            Err(Ec2Error::new("MissingParameter", "The request must contain the parameter groupId or groupName"))
        }
    }
}

fn group_ids(c: &Checked) -> HashMap<String, usize> {
    c.config.security_groups.iter().enumerate().map(|(i, g)| (g.group_id.clone(), i)).collect()
}

/// The rules the request's permissions stand for (canonical), refusing a rule given
/// twice in one request.
fn requested_rules(c: &Checked, perms: &[IpPermission], egress: bool) -> Result<Vec<SgRule>> {
    if perms.is_empty() {
        return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter ipPermissions"));
    }
    let ids = group_ids(c);
    let mut out: Vec<SgRule> = Vec::new();
    for (i, p) in perms.iter().enumerate() {
        let mut p = p.clone();
        for rule in permission_rules(&mut p, egress, &ids, &format!("IpPermissions[{i}]"))? {
            if out.iter().any(|x| x.identity() == rule.identity()) {
                return Err(invalid("The same permission must not appear multiple times"));
            }
            out.push(rule);
        }
    }
    Ok(out)
}

fn taken_rule_id(c: &Checked, id: &str) -> bool {
    c.groups.iter().any(|g| g.rules.iter().any(|r| r.id == id))
}

/// A rule as `describe-security-group-rules` prints it.
pub fn rule_model(group_id: &str, r: &SgRule, owner: Option<&str>) -> SecurityGroupRule {
    let (from, to) = ports_pair(r.ports);
    let mut m = SecurityGroupRule {
        security_group_rule_id: r.id.clone(),
        group_id: group_id.to_string(),
        group_owner_id: owner.map(str::to_string),
        is_egress: r.egress,
        ip_protocol: sg_protocol_string(r.proto),
        from_port: Some(from),
        to_port: Some(to),
        description: r.description.clone(),
        ..Default::default()
    };
    match &r.peer {
        Peer::Cidr(p) if p.family() == Family::V4 => m.cidr_ipv4 = Some(p.to_string()),
        Peer::Cidr(p) => m.cidr_ipv6 = Some(p.to_string()),
        Peer::Group(g) => {
            m.referenced_group_info = Some(ReferencedGroupInfo {
                group_id: Some(g.clone()),
                user_id: owner.map(str::to_string),
                ..Default::default()
            })
        }
    }
    m
}

pub fn rule_json(group_id: &str, r: &SgRule, owner: Option<&str>) -> Value {
    serde_json::to_value(rule_model(group_id, r, owner)).expect("rule serialises")
}

/// Every rule of every group, with its id: what the config keeps in `SecurityGroupRules`.
pub fn all_rules(c: &Checked) -> Vec<SecurityGroupRule> {
    c.groups
        .iter()
        .zip(&c.config.security_groups)
        .flat_map(|(g, doc)| g.rules.iter().map(move |r| rule_model(&g.id, r, doc.owner_id.as_deref())))
        .collect()
}

/// Rules written back as permissions, grouped by protocol and ports as EC2 prints them.
fn permissions<'a>(
    rules: impl Iterator<Item = &'a SgRule>,
    owner_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<IpPermission> {
    let mut out: Vec<IpPermission> = Vec::new();
    for r in rules {
        let protocol = sg_protocol_string(r.proto);
        let (from, to) = match r.ports {
            SgPorts::All => (None, None),
            p => {
                let (a, b) = ports_pair(p);
                (Some(a), Some(b))
            }
        };
        let i = match out.iter().position(|p| p.ip_protocol == protocol && p.from_port == from && p.to_port == to) {
            Some(i) => i,
            None => {
                out.push(IpPermission { ip_protocol: protocol, from_port: from, to_port: to, ..Default::default() });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        let description = r.description.clone();
        match &r.peer {
            Peer::Cidr(c) if c.family() == Family::V4 => {
                p.ip_ranges.push(IpRange { cidr_ip: c.to_string(), description })
            }
            Peer::Cidr(c) => p.ipv6_ranges.push(Ipv6Range { cidr_ipv6: c.to_string(), description }),
            Peer::Group(g) => p.user_id_group_pairs.push(UserIdGroupPair {
                group_id: Some(g.clone()),
                user_id: owner_of(g),
                description,
                ..Default::default()
            }),
        }
    }
    out
}

/// Replaces group `gi`'s rules (both directions) in `next` with `rules`, keeping
/// their ids in `SecurityGroupRules`.
fn set_rules(next: &mut Config, gi: usize, rules: &[SgRule]) {
    let owners: HashMap<String, Option<String>> =
        next.security_groups.iter().map(|g| (g.group_id.clone(), g.owner_id.clone())).collect();
    let owner_of = |g: &str| owners.get(g).cloned().flatten();
    let group = &mut next.security_groups[gi];
    group.ip_permissions = permissions(rules.iter().filter(|r| !r.egress), &owner_of);
    group.ip_permissions_egress = permissions(rules.iter().filter(|r| r.egress), &owner_of);
    let (id, owner) = (group.group_id.clone(), group.owner_id.clone());
    next.security_group_rules.retain(|r| r.group_id != id);
    next.security_group_rules.extend(rules.iter().map(|r| rule_model(&id, r, owner.as_deref())));
}

fn rule_not_found() -> Ec2Error {
    Ec2Error::new("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
}

fn duplicate(r: &SgRule) -> Ec2Error {
    Ec2Error::new("InvalidPermission.Duplicate", format!("the specified rule \"{}\" already exists", duplicate_text(r)))
}

// ---------------------------------------------------------------------------------
// DescribeSecurityGroups

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSecurityGroups {
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    group_names: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const SG_FILTERS: &[&str] = &[
    "description",
    "group-id",
    "group-name",
    "owner-id",
    "vpc-id",
    "ip-permission.cidr",
    "ip-permission.from-port",
    "ip-permission.group-id",
    "ip-permission.ipv6-cidr",
    "ip-permission.protocol",
    "ip-permission.to-port",
    "egress.ip-permission.cidr",
    "egress.ip-permission.from-port",
    "egress.ip-permission.group-id",
    "egress.ip-permission.ipv6-cidr",
    "egress.ip-permission.protocol",
    "egress.ip-permission.to-port",
];

fn sg_filter_values(g: &SecurityGroup, name: &str) -> Vec<String> {
    let (perms, field) = match name.strip_prefix("egress.ip-permission.") {
        Some(f) => (&g.ip_permissions_egress, f),
        None => match name.strip_prefix("ip-permission.") {
            Some(f) => (&g.ip_permissions, f),
            None => {
                return match name {
                    "description" => filter::s(&g.description),
                    "group-id" => filter::s(&g.group_id),
                    "group-name" => filter::s(&g.group_name),
                    "owner-id" => filter::opt(&g.owner_id),
                    "vpc-id" => filter::s(&g.vpc_id),
                    _ => Vec::new(),
                }
            }
        },
    };
    perms
        .iter()
        .flat_map(|p| -> Vec<String> {
            match field {
                "cidr" => p.ip_ranges.iter().map(|r| r.cidr_ip.clone()).collect(),
                "ipv6-cidr" => p.ipv6_ranges.iter().map(|r| r.cidr_ipv6.clone()).collect(),
                "group-id" => p.user_id_group_pairs.iter().filter_map(|u| u.group_id.clone()).collect(),
                "protocol" => filter::s(&p.ip_protocol),
                "from-port" => p.from_port.iter().map(|v| v.to_string()).collect(),
                "to-port" => p.to_port.iter().map(|v| v.to_string()).collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}

pub fn describe_security_groups(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeSecurityGroups = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, SG_FILTERS)?;
    for id in &r.group_ids {
        find_group(c, Some(id), None)?;
    }
    for name in &r.group_names {
        find_group(c, None, Some(name))?;
    }
    let groups: Vec<&SecurityGroup> = c
        .config
        .security_groups
        .iter()
        .filter(|g| r.group_ids.is_empty() || r.group_ids.contains(&g.group_id))
        .filter(|g| r.group_names.is_empty() || r.group_names.contains(&g.group_name))
        .filter(|g| filter::matches(&r.filters, &g.tags, |n| sg_filter_values(g, n)))
        .collect();
    Ok(Outcome::read(json!({ "SecurityGroups": groups })))
}

// ---------------------------------------------------------------------------------
// CreateSecurityGroup / DeleteSecurityGroup

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateSecurityGroup {
    group_name: Option<String>,
    description: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_security_group(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: CreateSecurityGroup = decode(req)?;
    let _ = r.dry_run;
    let name = r
        .group_name
        .ok_or_else(|| Ec2Error::new("MissingParameter", "The request must contain the parameter groupName"))?;
    let description = r
        .description
        .ok_or_else(|| Ec2Error::new("MissingParameter", "The request must contain the parameter groupDescription"))?;
    let vpc = super::vpc::vpc_for_create(c, r.vpc_id.as_deref())?;
    let name = name.trim_end().to_string();
    if name == "default" {
        return Err(Ec2Error::new(
            "InvalidGroup.Reserved",
            "The security group 'default' is reserved: every VPC has one already",
        ));
    }
    let vpc_id = c.vpcs[vpc].id.clone();
    if c.config.security_groups.iter().any(|g| g.vpc_id == vpc_id && g.group_name == name) {
        return Err(Ec2Error::new(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
        ));
    }
    let tags = tags_for(&r.tag_specifications, "security-group")?;
    let id = new_id("sg", |id| c.config.security_groups.iter().any(|g| g.group_id == id));
    let owner = c.vpcs[vpc].owner.clone();
    // A new group starts like the VPC's default group minus its rules, with the single
    // egress rule of spec section 7: all protocols to 0.0.0.0/0.
    let mut group = default_security_group(&vpc_id, false, owner.clone());
    group.group_id = id.clone();
    group.group_name = name;
    group.description = description;
    group.ip_permissions.clear();
    group.tags = tags;
    let mut next = c.config.clone();
    next.security_groups.push(group);
    let gi = next.security_groups.len() - 1;
    let egress = SgRule {
        id: new_id("sgr", |x| taken_rule_id(c, x)),
        egress: true,
        proto: None,
        ports: SgPorts::All,
        peer: Peer::Cidr(crate::validate::parse_cidr("0.0.0.0/0", Family::V4)?),
        description: None,
    };
    set_rules(&mut next, gi, &[egress]);
    let arn = format!(
        "arn:aws:ec2:{}:{}:security-group/{id}",
        c.config.appliance.region,
        owner.as_deref().unwrap_or_default()
    );
    Ok(Outcome::write(next, json!({"GroupId": id, "SecurityGroupArn": arn})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSecurityGroup {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_security_group(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DeleteSecurityGroup = decode(req)?;
    let _ = r.dry_run;
    let gi = find_group(c, r.group_id.as_deref(), r.group_name.as_deref())?;
    let id = c.config.security_groups[gi].group_id.clone();
    if c.config.security_groups[gi].group_name == "default" {
        return Err(Ec2Error::new(
            "CannotDelete",
            format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
        ));
    }
    if let Some(eni) = c.config.network_interfaces.iter().find(|n| n.groups.iter().any(|g| g.group_id == id)) {
        return Err(Ec2Error::new(
            "DependencyViolation",
            format!("resource {id} has a dependent object ({})", eni.network_interface_id),
        ));
    }
    if let Some(other) =
        c.groups.iter().find(|g| g.id != id && g.rules.iter().any(|r| r.peer == Peer::Group(id.clone())))
    {
        return Err(Ec2Error::new(
            "InvalidGroup.InUse",
            format!("Group {id} is used by rules of security group {}", other.id),
        ));
    }
    let mut next = c.config.clone();
    next.security_groups.remove(gi);
    next.security_group_rules.retain(|r| r.group_id != id);
    Ok(Outcome::write(next, json!({"Return": true, "GroupId": id})))
}

// ---------------------------------------------------------------------------------
// Authorize / Revoke

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Authorize {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

pub fn authorize_ingress(c: &Checked, req: &Value) -> Result<Outcome> {
    authorize(c, req, false)
}

pub fn authorize_egress(c: &Checked, req: &Value) -> Result<Outcome> {
    authorize(c, req, true)
}

fn authorize(c: &Checked, req: &Value, egress: bool) -> Result<Outcome> {
    let r: Authorize = decode(req)?;
    let _ = (r.dry_run, r.tag_specifications);
    let gi = find_group(c, r.group_id.as_deref(), r.group_name.as_deref())?;
    let mut new_rules = requested_rules(c, &r.ip_permissions, egress)?;
    let mut rules = c.groups[gi].rules.clone();
    if let Some(dup) = new_rules.iter().find(|n| rules.iter().any(|e| e.identity() == n.identity())) {
        return Err(duplicate(dup));
    }
    let mut fresh: Vec<String> = Vec::new();
    for n in &mut new_rules {
        n.id = new_id("sgr", |x| taken_rule_id(c, x) || fresh.iter().any(|f| f == x));
        fresh.push(n.id.clone());
    }
    rules.extend(new_rules);
    let mut next = c.config.clone();
    set_rules(&mut next, gi, &rules);
    let group_id = c.groups[gi].id.clone();
    Ok(Outcome::write_then(next, move |after| {
        let gi = after.group_index(&group_id).expect("group kept");
        let owner = after.config.security_groups[gi].owner_id.clone();
        let added: Vec<Value> = after.groups[gi]
            .rules
            .iter()
            .filter(|x| fresh.contains(&x.id))
            .map(|x| rule_json(&group_id, x, owner.as_deref()))
            .collect();
        json!({"Return": true, "SecurityGroupRules": added})
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Revoke {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    #[serde(default)]
    security_group_rule_ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn revoke_ingress(c: &Checked, req: &Value) -> Result<Outcome> {
    revoke(c, req, false)
}

pub fn revoke_egress(c: &Checked, req: &Value) -> Result<Outcome> {
    revoke(c, req, true)
}

/// Checks a rule id's shape and finds it among `rules` (of one group and direction).
fn find_rule(rules: &[SgRule], id: &str, egress: Option<bool>) -> Result<usize> {
    if !is_resource_id(id, "sgr") {
        return Err(Ec2Error::new(
            "InvalidSecurityGroupRuleId.Malformed",
            format!("The security group rule ID '{id}' is malformed"),
        ));
    }
    rules.iter().position(|r| r.id == id && egress.is_none_or(|e| r.egress == e)).ok_or_else(|| {
        Ec2Error::new(
            "InvalidSecurityGroupRuleId.NotFound",
            format!("The security group rule ID '{id}' does not exist in this security group"),
        )
    })
}

fn revoke(c: &Checked, req: &Value, egress: bool) -> Result<Outcome> {
    let r: Revoke = decode(req)?;
    let _ = r.dry_run;
    let gi = find_group(c, r.group_id.as_deref(), r.group_name.as_deref())?;
    let mut rules = c.groups[gi].rules.clone();
    let mut gone: Vec<SgRule> = Vec::new();
    match (r.ip_permissions.is_empty(), r.security_group_rule_ids.is_empty()) {
        (false, false) => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "Specify either ipPermissions or securityGroupRuleIds, not both",
            ))
        }
        (true, true) => {
            return Err(Ec2Error::new(
                "MissingParameter",
                "The request must contain the parameter ipPermissions or securityGroupRuleIds",
            ))
        }
        (false, true) => {
            for want in requested_rules(c, &r.ip_permissions, egress)? {
                let i = rules.iter().position(|x| x.identity() == want.identity()).ok_or_else(rule_not_found)?;
                gone.push(rules.remove(i));
            }
        }
        (true, false) => {
            for id in &r.security_group_rule_ids {
                let i = find_rule(&rules, id, Some(egress))?;
                gone.push(rules.remove(i));
            }
        }
    }
    let mut next = c.config.clone();
    set_rules(&mut next, gi, &rules);
    let group = &c.config.security_groups[gi];
    let revoked: Vec<Value> = gone.iter().map(|x| rule_json(&group.group_id, x, group.owner_id.as_deref())).collect();
    Ok(Outcome::write(next, json!({"Return": true, "RevokedSecurityGroupRules": revoked})))
}

// ---------------------------------------------------------------------------------
// DescribeSecurityGroupRules / ModifySecurityGroupRules

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeRules {
    #[serde(default)]
    security_group_rule_ids: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn describe_security_group_rules(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeRules = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, &["group-id", "security-group-rule-id"])?;
    let all = all_rules(c);
    for id in &r.security_group_rule_ids {
        let flat: Vec<SgRule> = c.groups.iter().flat_map(|g| g.rules.iter().cloned()).collect();
        find_rule(&flat, id, None)?;
    }
    let rules: Vec<&SecurityGroupRule> = all
        .iter()
        .filter(|x| {
            r.security_group_rule_ids.is_empty() || r.security_group_rule_ids.contains(&x.security_group_rule_id)
        })
        .filter(|x| {
            filter::matches(&r.filters, &[], |n| match n {
                "group-id" => filter::s(&x.group_id),
                "security-group-rule-id" => filter::s(&x.security_group_rule_id),
                _ => Vec::new(),
            })
        })
        .collect();
    Ok(Outcome::read(json!({ "SecurityGroupRules": rules })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyRules {
    group_id: Option<String>,
    #[serde(default)]
    security_group_rules: Vec<RuleUpdate>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleUpdate {
    security_group_rule_id: Option<String>,
    security_group_rule: Option<RuleRequest>,
}

/// EC2's `SecurityGroupRuleRequest`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleRequest {
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidr_ipv4: Option<String>,
    cidr_ipv6: Option<String>,
    prefix_list_id: Option<String>,
    referenced_group_id: Option<String>,
    description: Option<String>,
}

impl RuleRequest {
    /// The same rule as a one-peer permission, so validation has one path.
    fn permission(&self) -> Result<IpPermission> {
        let description = self.description.clone();
        Ok(IpPermission {
            ip_protocol: self.ip_protocol.clone().ok_or_else(|| {
                Ec2Error::new("MissingParameter", "The request must contain the parameter IpProtocol")
            })?,
            from_port: self.from_port,
            to_port: self.to_port,
            ip_ranges: self
                .cidr_ipv4
                .iter()
                .map(|c| IpRange { cidr_ip: c.clone(), description: description.clone() })
                .collect(),
            ipv6_ranges: self
                .cidr_ipv6
                .iter()
                .map(|c| Ipv6Range { cidr_ipv6: c.clone(), description: description.clone() })
                .collect(),
            prefix_list_ids: self
                .prefix_list_id
                .iter()
                .map(|p| PrefixListId { prefix_list_id: p.clone(), description: description.clone() })
                .collect(),
            user_id_group_pairs: self
                .referenced_group_id
                .iter()
                .map(|g| UserIdGroupPair {
                    group_id: Some(g.clone()),
                    description: description.clone(),
                    ..Default::default()
                })
                .collect(),
        })
    }
}

pub fn modify_security_group_rules(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: ModifyRules = decode(req)?;
    let _ = r.dry_run;
    let gi = find_group(c, r.group_id.as_deref(), None)?;
    if r.security_group_rules.is_empty() {
        return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter SecurityGroupRules"));
    }
    let mut rules = c.groups[gi].rules.clone();
    for (i, u) in r.security_group_rules.iter().enumerate() {
        let id = u.security_group_rule_id.as_deref().ok_or_else(|| {
            Ec2Error::new("MissingParameter", "The request must contain the parameter SecurityGroupRuleId")
        })?;
        let at = find_rule(&rules, id, None)?;
        let req = u.security_group_rule.as_ref().ok_or_else(|| {
            Ec2Error::new("MissingParameter", "The request must contain the parameter SecurityGroupRule")
        })?;
        let mut perm = req.permission()?;
        let mut new =
            permission_rules(&mut perm, rules[at].egress, &group_ids(c), &format!("SecurityGroupRules[{i}]"))?;
        if new.len() != 1 {
            return Err(invalid("A security group rule has exactly one of CidrIpv4, CidrIpv6, ReferencedGroupId"));
        }
        let mut rule = new.remove(0);
        if let Some(dup) = rules.iter().enumerate().find(|(j, x)| *j != at && x.identity() == rule.identity()) {
            return Err(duplicate(dup.1));
        }
        rule.id = rules[at].id.clone();
        rules[at] = rule;
    }
    let mut next = c.config.clone();
    set_rules(&mut next, gi, &rules);
    Ok(Outcome::write(next, json!({"Return": true})))
}
