//! Network-interface actions: describe, and the attributes vpcgate enforces (security
//! groups, source/destination check, conntrack timeouts, description).

use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, Filter};
use super::{decode, lookup, Outcome};
use crate::error::{Ec2Error, Result};
use crate::model::{ConnectionTrackingConfiguration, GroupIdentifier, NetworkInterface};
use crate::validate::Checked;

pub fn find_eni(c: &Checked, id: &str) -> Result<usize> {
    lookup(
        id,
        "eni",
        "InvalidNetworkInterfaceId.Malformed",
        "InvalidNetworkInterfaceID.NotFound",
        "networkInterface",
        |id| c.config.network_interfaces.iter().position(|n| n.network_interface_id == id),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeNetworkInterfaces {
    #[serde(default)]
    network_interface_ids: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const ENI_FILTERS: &[&str] = &[
    "network-interface-id",
    "subnet-id",
    "vpc-id",
    "group-id",
    "group-name",
    "mac-address",
    "private-ip-address",
    "addresses.private-ip-address",
    "addresses.primary",
    "ipv6-addresses.ipv6-address",
    "source-dest-check",
    "attachment.instance-id",
    "owner-id",
    "availability-zone",
    "description",
];

fn eni_values(n: &NetworkInterface, name: &str) -> Vec<String> {
    match name {
        "network-interface-id" => filter::s(&n.network_interface_id),
        "subnet-id" => filter::s(&n.subnet_id),
        "vpc-id" => filter::s(&n.vpc_id),
        "group-id" => n.groups.iter().map(|g| g.group_id.clone()).collect(),
        "group-name" => n.groups.iter().filter_map(|g| g.group_name.clone()).collect(),
        "mac-address" => filter::s(&n.mac_address),
        "private-ip-address" | "addresses.private-ip-address" => n
            .private_ip_address
            .iter()
            .cloned()
            .chain(n.private_ip_addresses.iter().map(|p| p.private_ip_address.clone()))
            .collect(),
        "addresses.primary" => n.private_ip_addresses.iter().map(|p| p.primary.to_string()).collect(),
        "ipv6-addresses.ipv6-address" => n.ipv6_addresses.iter().map(|a| a.ipv6_address.clone()).collect(),
        "source-dest-check" => filter::b(n.source_dest_check),
        "attachment.instance-id" => n.attachment.iter().filter_map(|a| a.instance_id.clone()).collect(),
        "owner-id" => filter::opt(&n.owner_id),
        "availability-zone" => filter::opt(&n.availability_zone),
        "description" => filter::opt(&n.description),
        _ => Vec::new(),
    }
}

pub fn describe_network_interfaces(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeNetworkInterfaces = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, ENI_FILTERS)?;
    for id in &r.network_interface_ids {
        find_eni(c, id)?;
    }
    let enis: Vec<&NetworkInterface> = c
        .config
        .network_interfaces
        .iter()
        .filter(|n| r.network_interface_ids.is_empty() || r.network_interface_ids.contains(&n.network_interface_id))
        .filter(|n| filter::matches(&r.filters, &tags_of(n), |name| eni_values(n, name)))
        .collect();
    Ok(Outcome::read(json!({ "NetworkInterfaces": enis })))
}

/// ENIs print their tags as `TagSet` (kept verbatim among the unknown fields).
fn tags_of(n: &NetworkInterface) -> Vec<crate::model::Tag> {
    n.extra.get("TagSet").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// EC2's `AttributeBooleanValue` (`{"Value": true}`); a bare boolean is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum BoolValue {
    Wrapped {
        #[serde(rename = "Value")]
        value: bool,
    },
    Bare(bool),
}

/// EC2's `AttributeValue` (`{"Value": "text"}`); a bare string is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringValue {
    Wrapped {
        #[serde(rename = "Value")]
        value: String,
    },
    Bare(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ConntrackSpec {
    tcp_established_timeout: Option<i64>,
    udp_stream_timeout: Option<i64>,
    udp_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyAttribute {
    network_interface_id: Option<String>,
    groups: Option<Vec<String>>,
    source_dest_check: Option<BoolValue>,
    connection_tracking_specification: Option<ConntrackSpec>,
    description: Option<StringValue>,
    #[serde(default)]
    dry_run: bool,
}

pub fn modify_network_interface_attribute(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: ModifyAttribute = decode(req)?;
    let _ = r.dry_run;
    let id = r.network_interface_id.as_deref().ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter networkInterfaceId")
    })?;
    let i = find_eni(c, id)?;
    if r.groups.is_none()
        && r.source_dest_check.is_none()
        && r.connection_tracking_specification.is_none()
        && r.description.is_none()
    {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain one of Groups, SourceDestCheck, ConnectionTrackingSpecification, Description",
        ));
    }
    let mut next = c.config.clone();
    let eni = &mut next.network_interfaces[i];
    if let Some(groups) = &r.groups {
        if groups.is_empty() {
            return Err(Ec2Error::new("MissingParameter", "The request must contain at least one security group"));
        }
        let mut list: Vec<GroupIdentifier> = Vec::new();
        for g in groups {
            let gi = super::sg::find_group(c, Some(g), None)?;
            let group = &c.config.security_groups[gi];
            if group.vpc_id != c.vpcs[c.enis[i].vpc].id {
                return Err(Ec2Error::new(
                    "InvalidGroup.NotFound",
                    format!("The security group '{g}' does not exist in VPC '{}'", c.vpcs[c.enis[i].vpc].id),
                ));
            }
            if !list.iter().any(|x| &x.group_id == g) {
                list.push(GroupIdentifier { group_id: g.clone(), group_name: Some(group.group_name.clone()) });
            }
        }
        let quota = c.config.appliance.quotas.security_groups_per_network_interface as usize;
        if list.len() > quota {
            // An ENI attached to an instance carries the instance's groups: EC2 names
            // the instance's limit then.
            let code = if c.enis[i].instance_id.is_some() {
                "SecurityGroupsPerInstanceLimitExceeded"
            } else {
                "SecurityGroupsPerInterfaceLimitExceeded"
            };
            return Err(Ec2Error::new(
                code,
                format!(
                    "The maximum number of security groups per interface has been reached ({} > {quota})",
                    list.len()
                ),
            ));
        }
        eni.groups = list;
    }
    if let Some(v) = r.source_dest_check {
        eni.source_dest_check = match v {
            BoolValue::Wrapped { value } | BoolValue::Bare(value) => value,
        };
    }
    if let Some(d) = r.description {
        eni.description = Some(match d {
            StringValue::Wrapped { value } | StringValue::Bare(value) => value,
        });
    }
    if let Some(spec) = r.connection_tracking_specification {
        let mut ct: ConnectionTrackingConfiguration = eni.connection_tracking_configuration.unwrap_or_default();
        ct.tcp_established_timeout = spec.tcp_established_timeout.or(ct.tcp_established_timeout);
        ct.udp_stream_timeout = spec.udp_stream_timeout.or(ct.udp_stream_timeout);
        ct.udp_timeout = spec.udp_timeout.or(ct.udp_timeout);
        eni.connection_tracking_configuration = Some(ct);
    }
    Ok(Outcome::write(next, json!({})))
}
