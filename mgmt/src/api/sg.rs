//! Security-group actions.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode, Outcome};
use crate::error::{invalid, Ec2Error, Result};
use crate::model::{IpPermission, SecurityGroup};
use crate::validate::{is_resource_id, permission_rules, Checked, Peer, SgRule};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSecurityGroups {
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    group_names: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn describe_security_groups(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeSecurityGroups = decode(req)?;
    let _ = r.dry_run;
    for id in &r.group_ids {
        find_group(c, Some(id), None)?;
    }
    let groups: Vec<&SecurityGroup> = c
        .config
        .security_groups
        .iter()
        .filter(|g| r.group_ids.is_empty() || r.group_ids.contains(&g.group_id))
        .filter(|g| r.group_names.is_empty() || r.group_names.contains(&g.group_name))
        .collect();
    Ok(Outcome::read(json!({ "SecurityGroups": groups })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Authorize {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    #[serde(default)]
    dry_run: bool,
}

pub fn authorize_ingress(c: &Checked, req: &Value) -> Result<Outcome> {
    authorize(c, req, false)
}

pub fn authorize_egress(c: &Checked, req: &Value) -> Result<Outcome> {
    authorize(c, req, true)
}

/// The index of a group named by id (or by name), with EC2's errors.
pub fn find_group(c: &Checked, id: Option<&str>, name: Option<&str>) -> Result<usize> {
    match (id, name) {
        (Some(id), _) => {
            if !is_resource_id(id, "sg") {
                return Err(Ec2Error::new(
                    "InvalidGroupId.Malformed",
                    format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
                ));
            }
            c.config.security_groups.iter().position(|g| g.group_id == id).ok_or_else(|| {
                Ec2Error::new("InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
            })
        }
        (None, Some(name)) => c.config.security_groups.iter().position(|g| g.group_name == name).ok_or_else(|| {
            Ec2Error::new("InvalidGroup.NotFound", format!("The security group '{name}' does not exist in default VPC"))
        }),
        (None, None) => {
            Err(Ec2Error::new("MissingParameter", "The request must contain the parameter groupId or groupName"))
        }
    }
}

fn authorize(c: &Checked, req: &Value, egress: bool) -> Result<Outcome> {
    let r: Authorize = decode(req)?;
    let gi = find_group(c, r.group_id.as_deref(), r.group_name.as_deref())?;
    if r.ip_permissions.is_empty() {
        return Err(Ec2Error::new("MissingParameter", "The request must contain the parameter ipPermissions"));
    }
    let group_ids: std::collections::HashMap<String, usize> =
        c.config.security_groups.iter().enumerate().map(|(i, g)| (g.group_id.clone(), i)).collect();
    let mut perms = r.ip_permissions.clone();
    let mut new_rules: Vec<SgRule> = Vec::new();
    for (i, p) in perms.iter_mut().enumerate() {
        let rules = permission_rules(p, egress, &group_ids, &format!("IpPermissions[{i}]"))?;
        for rule in rules {
            if new_rules.iter().any(|x| x.identity() == rule.identity()) {
                return Err(invalid("The same permission must not appear multiple times"));
            }
            new_rules.push(rule);
        }
    }
    let existing = &c.groups[c.group_index(&c.config.security_groups[gi].group_id).expect("checked group")];
    if let Some(dup) = new_rules.iter().find(|n| existing.rules.iter().any(|e| e.identity() == n.identity())) {
        return Err(Ec2Error::new(
            "InvalidPermission.Duplicate",
            format!("the specified rule \"{}\" already exists", crate::validate::duplicate_text(dup)),
        ));
    }
    if r.dry_run {
        return Err(Ec2Error::new("DryRunOperation", "Request would have succeeded, but DryRun flag is set."));
    }
    let mut next = c.config.clone();
    let group = &mut next.security_groups[gi];
    let list = if egress { &mut group.ip_permissions_egress } else { &mut group.ip_permissions };
    list.extend(perms);
    let group_id = group.group_id.clone();
    // The response lists the new rules with the ids the validated config gives them.
    let after = crate::validate::check(&next)?;
    let g = &after.groups[after.group_index(&group_id).expect("group kept")];
    let added: Vec<Value> = g
        .rules
        .iter()
        .filter(|x| new_rules.iter().any(|n| n.identity() == x.identity()))
        .map(|x| rule_json(&group_id, x, after.config.security_groups[gi].owner_id.as_deref()))
        .collect();
    Ok(Outcome::write(next, json!({"Return": true, "SecurityGroupRules": added})))
}

/// A rule as `describe-security-group-rules` prints it.
pub fn rule_json(group_id: &str, r: &SgRule, owner: Option<&str>) -> Value {
    let (from, to) = crate::validate::ports_pair(r.ports);
    let mut v = json!({
        "SecurityGroupRuleId": r.id,
        "GroupId": group_id,
        "IsEgress": r.egress,
        "IpProtocol": crate::validate::sg_protocol_string(r.proto),
        "FromPort": from,
        "ToPort": to,
    });
    if let Some(o) = owner {
        v["GroupOwnerId"] = json!(o);
    }
    match &r.peer {
        Peer::Cidr(p) if p.family() == dataplane::addr::Family::V4 => v["CidrIpv4"] = json!(p.to_string()),
        Peer::Cidr(p) => v["CidrIpv6"] = json!(p.to_string()),
        Peer::Group(g) => v["ReferencedGroupInfo"] = json!({"GroupId": g}),
    }
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    v
}
