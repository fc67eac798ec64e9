//! VPC and subnet actions (read-only: VPCs and subnets come from the config).

use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, Filter};
use super::{decode, lookup, Outcome};
use crate::error::{Ec2Error, Result};
use crate::model::{Subnet, Vpc};
use crate::validate::Checked;

/// The index of a VPC named by id, with EC2's errors.
pub fn find_vpc(c: &Checked, id: &str) -> Result<usize> {
    lookup(id, "vpc", "InvalidVpcId.Malformed", "InvalidVpcID.NotFound", "vpc", |id| {
        c.vpcs.iter().position(|v| v.id == id)
    })
}

/// The VPC a new resource goes in: the one named, else the default VPC (or the only
/// one), as EC2 does without a `VpcId`.
pub fn vpc_for_create(c: &Checked, id: Option<&str>) -> Result<usize> {
    if let Some(id) = id {
        return find_vpc(c, id);
    }
    let default = c.config.vpcs.iter().position(|v| v.is_default == Some(true));
    match default {
        Some(i) => Ok(i),
        None if c.vpcs.len() == 1 => Ok(0),
        None => Err(Ec2Error::new(
            "VPCIdNotSpecified",
            "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
        )),
    }
}

pub fn find_subnet(c: &Checked, id: &str) -> Result<usize> {
    lookup(id, "subnet", "InvalidSubnetID.Malformed", "InvalidSubnetID.NotFound", "subnet", |id| {
        c.subnets.iter().position(|s| s.id == id)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeVpcs {
    #[serde(default)]
    vpc_ids: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block-association.cidr-block",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "is-default",
    "owner-id",
    "state",
];

fn vpc_values(v: &Vpc, name: &str) -> Vec<String> {
    match name {
        "vpc-id" => filter::s(&v.vpc_id),
        "cidr" => filter::opt(&v.cidr_block),
        "cidr-block-association.cidr-block" => v
            .cidr_block
            .iter()
            .cloned()
            .chain(v.cidr_block_association_set.iter().map(|a| a.cidr_block.clone()))
            .collect(),
        "ipv6-cidr-block-association.ipv6-cidr-block" => {
            v.ipv6_cidr_block_association_set.iter().map(|a| a.ipv6_cidr_block.clone()).collect()
        }
        "is-default" => filter::b(v.is_default.unwrap_or(false)),
        "owner-id" => filter::opt(&v.owner_id),
        "state" => filter::s(v.extra.get("State").and_then(Value::as_str).unwrap_or("available")),
        _ => Vec::new(),
    }
}

pub fn describe_vpcs(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeVpcs = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, VPC_FILTERS)?;
    for id in &r.vpc_ids {
        find_vpc(c, id)?;
    }
    let vpcs: Vec<&Vpc> = c
        .config
        .vpcs
        .iter()
        .filter(|v| r.vpc_ids.is_empty() || r.vpc_ids.contains(&v.vpc_id))
        .filter(|v| filter::matches(&r.filters, &v.tags, |n| vpc_values(v, n)))
        .collect();
    Ok(Outcome::read(json!({ "Vpcs": vpcs })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSubnets {
    #[serde(default)]
    subnet_ids: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "availability-zone",
    "availability-zone-id",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "owner-id",
    "state",
];

fn subnet_values(s: &Subnet, name: &str) -> Vec<String> {
    match name {
        "subnet-id" => filter::s(&s.subnet_id),
        "vpc-id" => filter::s(&s.vpc_id),
        "cidr-block" | "cidr" | "cidrBlock" => filter::s(&s.cidr_block),
        "availability-zone" => filter::opt(&s.availability_zone),
        "availability-zone-id" => filter::opt(&s.availability_zone_id),
        "ipv6-cidr-block-association.ipv6-cidr-block" => {
            s.ipv6_cidr_block_association_set.iter().map(|a| a.ipv6_cidr_block.clone()).collect()
        }
        "owner-id" => filter::opt(&s.owner_id),
        "state" => filter::s(s.extra.get("State").and_then(Value::as_str).unwrap_or("available")),
        _ => Vec::new(),
    }
}

pub fn describe_subnets(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeSubnets = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filters, SUBNET_FILTERS)?;
    for id in &r.subnet_ids {
        find_subnet(c, id)?;
    }
    let subnets: Vec<&Subnet> = c
        .config
        .subnets
        .iter()
        .filter(|s| r.subnet_ids.is_empty() || r.subnet_ids.contains(&s.subnet_id))
        .filter(|s| filter::matches(&r.filters, &s.tags, |n| subnet_values(s, n)))
        .collect();
    Ok(Outcome::read(json!({ "Subnets": subnets })))
}
