//! The `aws ec2` verbs: their arguments (as the AWS CLI takes them) and the API
//! request each one makes.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::shorthand::{self as sh, ParamError};

#[derive(Args, Debug, Default)]
pub struct DryRun {
    /// Check everything, change nothing (answers DryRunOperation).
    #[arg(long, overrides_with = "no_dry_run")]
    dry_run: bool,
    #[arg(long, hide = true)]
    no_dry_run: bool,
}

/// `--filters`, `--max-results`, `--next-token` of the describe verbs.
#[derive(Args, Debug, Default)]
pub struct Listing {
    /// Name=NAME,Values=V1,V2 (shorthand or JSON), one argument per filter.
    #[arg(long, num_args = 1..)]
    filters: Vec<String>,
    #[arg(long)]
    max_results: Option<i64>,
    #[arg(long)]
    next_token: Option<String>,
}

/// Security-group rule arguments of authorize/revoke (ingress and egress).
#[derive(Args, Debug)]
pub struct RuleArgs {
    #[arg(long)]
    group_id: Option<String>,
    #[arg(long)]
    group_name: Option<String>,
    /// IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.0.0.0/8}] or JSON; one argument per permission.
    #[arg(long, num_args = 1..)]
    ip_permissions: Vec<String>,
    /// tcp, udp, icmp, icmpv6, all (-1) or a protocol number.
    #[arg(long, allow_hyphen_values = true)]
    protocol: Option<String>,
    /// A port (22), a range (1000-2000), or for ICMP TYPE-CODE; -1 for all.
    #[arg(long, allow_hyphen_values = true)]
    port: Option<String>,
    /// An IPv4 CIDR (IPv6 goes in --ip-permissions Ipv6Ranges, as with the AWS CLI).
    #[arg(long)]
    cidr: Option<String>,
    /// A security group id (sg-...) or name as the peer.
    #[arg(long)]
    source_group: Option<String>,
    /// Accepted for compatibility; groups are local to the appliance.
    #[arg(long)]
    group_owner: Option<String>,
    /// Revoke only: the rules to remove, by id.
    #[arg(long, num_args = 1..)]
    security_group_rule_ids: Vec<String>,
    /// Authorize only: accepted for compatibility.
    #[arg(long, num_args = 1..)]
    tag_specifications: Vec<String>,
    #[command(flatten)]
    dry: DryRun,
}

/// `--egress | --no-egress` (`--ingress` is `--no-egress`).
#[derive(Args, Debug)]
pub struct Direction {
    #[arg(long, conflicts_with_all = ["no_egress", "ingress"])]
    egress: bool,
    #[arg(long)]
    no_egress: bool,
    #[arg(long)]
    ingress: bool,
}

#[derive(Args, Debug)]
pub struct EntryArgs {
    #[arg(long)]
    network_acl_id: String,
    #[arg(long)]
    rule_number: i64,
    /// A protocol number (6, 17, 1, 58), a name (tcp, udp, icmp, icmpv6), or -1 for all.
    #[arg(long, allow_hyphen_values = true)]
    protocol: String,
    /// allow or deny.
    #[arg(long)]
    rule_action: String,
    #[command(flatten)]
    direction: Direction,
    #[arg(long)]
    cidr_block: Option<String>,
    #[arg(long)]
    ipv6_cidr_block: Option<String>,
    /// From=INT,To=INT
    #[arg(long, allow_hyphen_values = true)]
    port_range: Option<String>,
    /// Type=INT,Code=INT (-1 for all)
    #[arg(long, allow_hyphen_values = true)]
    icmp_type_code: Option<String>,
    #[command(flatten)]
    dry: DryRun,
}

#[derive(Subcommand, Debug)]
pub enum Ec2 {
    /// Describes security groups.
    DescribeSecurityGroups {
        #[arg(long, num_args = 1..)]
        group_ids: Vec<String>,
        #[arg(long, num_args = 1..)]
        group_names: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Creates a security group (one egress rule: all traffic to 0.0.0.0/0).
    CreateSecurityGroup {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        description: String,
        #[arg(long)]
        vpc_id: Option<String>,
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Deletes a security group.
    DeleteSecurityGroup {
        #[arg(long)]
        group_id: Option<String>,
        #[arg(long)]
        group_name: Option<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Adds inbound rules to a security group.
    AuthorizeSecurityGroupIngress(RuleArgs),
    /// Adds outbound rules to a security group.
    AuthorizeSecurityGroupEgress(RuleArgs),
    /// Removes inbound rules (by permission or by --security-group-rule-ids).
    RevokeSecurityGroupIngress(RuleArgs),
    /// Removes outbound rules (by permission or by --security-group-rule-ids).
    RevokeSecurityGroupEgress(RuleArgs),
    /// Describes security group rules.
    DescribeSecurityGroupRules {
        #[arg(long, num_args = 1..)]
        security_group_rule_ids: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Changes rules in place (their ids stay).
    ModifySecurityGroupRules {
        #[arg(long)]
        group_id: String,
        /// SecurityGroupRuleId=sgr-...,SecurityGroupRule={IpProtocol=tcp,FromPort=22,ToPort=22,CidrIpv4=...}
        #[arg(long, num_args = 1.., required = true)]
        security_group_rules: Vec<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Creates a network ACL (it denies everything until entries are added).
    CreateNetworkAcl {
        #[arg(long)]
        vpc_id: String,
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[arg(long)]
        client_token: Option<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Deletes a network ACL.
    DeleteNetworkAcl {
        #[arg(long)]
        network_acl_id: String,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Describes network ACLs.
    DescribeNetworkAcls {
        #[arg(long, num_args = 1..)]
        network_acl_ids: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Adds a numbered entry to a network ACL.
    CreateNetworkAclEntry(EntryArgs),
    /// Replaces a numbered entry of a network ACL.
    ReplaceNetworkAclEntry(EntryArgs),
    /// Deletes a numbered entry of a network ACL.
    DeleteNetworkAclEntry {
        #[arg(long)]
        network_acl_id: String,
        #[arg(long)]
        rule_number: i64,
        #[command(flatten)]
        direction: Direction,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Associates a subnet (named by its current association) with another network ACL.
    ReplaceNetworkAclAssociation {
        #[arg(long)]
        association_id: String,
        #[arg(long)]
        network_acl_id: String,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Describes network interfaces.
    DescribeNetworkInterfaces {
        #[arg(long, num_args = 1..)]
        network_interface_ids: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Changes an interface's groups, source/destination check, conntrack timeouts or description.
    ModifyNetworkInterfaceAttribute {
        #[arg(long)]
        network_interface_id: String,
        #[arg(long, num_args = 1..)]
        groups: Vec<String>,
        #[arg(long, overrides_with = "no_source_dest_check")]
        source_dest_check: bool,
        #[arg(long)]
        no_source_dest_check: bool,
        /// TcpEstablishedTimeout=INT,UdpStreamTimeout=INT,UdpTimeout=INT
        #[arg(long)]
        connection_tracking_specification: Option<String>,
        /// Value=TEXT
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Describes subnets.
    DescribeSubnets {
        #[arg(long, num_args = 1..)]
        subnet_ids: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Describes VPCs.
    DescribeVpcs {
        #[arg(long, num_args = 1..)]
        vpc_ids: Vec<String>,
        #[command(flatten)]
        list: Listing,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Creates flow logs for VPCs, subnets or network interfaces.
    CreateFlowLogs {
        /// VPC, Subnet or NetworkInterface.
        #[arg(long)]
        resource_type: String,
        #[arg(long, num_args = 1.., required = true)]
        resource_ids: Vec<String>,
        /// ACCEPT, REJECT or ALL.
        #[arg(long)]
        traffic_type: Option<String>,
        /// cloud-watch-logs, s3 or kinesis-data-firehose.
        #[arg(long)]
        log_destination_type: Option<String>,
        #[arg(long)]
        log_destination: Option<String>,
        #[arg(long)]
        log_group_name: Option<String>,
        #[arg(long)]
        deliver_logs_permission_arn: Option<String>,
        #[arg(long)]
        deliver_cross_account_role: Option<String>,
        #[arg(long)]
        log_format: Option<String>,
        #[arg(long)]
        max_aggregation_interval: Option<i64>,
        /// FileFormat=plain-text|parquet,HiveCompatiblePartitions=BOOL,PerHourPartition=BOOL
        #[arg(long)]
        destination_options: Option<String>,
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[arg(long)]
        client_token: Option<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Deletes flow logs.
    DeleteFlowLogs {
        #[arg(long, num_args = 1.., required = true)]
        flow_log_ids: Vec<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Describes flow logs.
    DescribeFlowLogs {
        #[arg(long, num_args = 1..)]
        flow_log_ids: Vec<String>,
        /// Name=NAME,Values=V1,V2 (describe-flow-logs calls it --filter, as the AWS CLI does).
        #[arg(long, num_args = 1..)]
        filter: Vec<String>,
        #[arg(long)]
        max_results: Option<i64>,
        #[arg(long)]
        next_token: Option<String>,
        #[command(flatten)]
        dry: DryRun,
    },
}

/// Builds a request object from `(key, value)` pairs, leaving out empty ones.
struct Req(Map<String, Value>);

impl Req {
    fn new() -> Req {
        Req(Map::new())
    }
    fn set(mut self, k: &str, v: impl Into<Value>) -> Req {
        let v = v.into();
        let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
        if !empty {
            self.0.insert(k.to_string(), v);
        }
        self
    }
    fn dry(self, d: &DryRun) -> Req {
        if d.dry_run {
            self.set("DryRun", true)
        } else {
            self
        }
    }
    fn listing(self, l: &Listing) -> Result<Req, ParamError> {
        Ok(self
            .set("Filters", sh::structures("--filters", &l.filters, &sh::filter())?)
            .set("MaxResults", l.max_results)
            .set("NextToken", l.next_token.clone()))
    }
    fn tags(self, specs: &[String]) -> Result<Req, ParamError> {
        Ok(self.set("TagSpecifications", sh::structures("--tag-specifications", specs, &sh::tag_specification())?))
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn usage(msg: impl Into<String>) -> ParamError {
    ParamError(msg.into())
}

/// `--port`: `22`, `1000-2000`, `-1`, or for ICMP `TYPE-CODE` (`8--1`: type 8, any code).
pub fn port_arg(s: &str) -> Result<(i64, i64), ParamError> {
    let bad = || usage(format!("Error parsing parameter '--port': '{s}' is not a port, a range FROM-TO, or -1"));
    let s = s.trim();
    if s == "-1" || s.eq_ignore_ascii_case("all") {
        return Ok((-1, -1));
    }
    let (from, to) = match s.strip_prefix("-1-") {
        Some(rest) => ("-1", rest),
        None => s.split_once('-').unwrap_or((s, s)),
    };
    let n = |x: &str| x.parse::<i64>().map_err(|_| bad());
    Ok((n(from)?, n(to)?))
}

impl RuleArgs {
    fn request(&self, egress: bool, revoke: bool) -> Result<Value, ParamError> {
        let simple =
            self.protocol.is_some() || self.port.is_some() || self.cidr.is_some() || self.source_group.is_some();
        if simple && !self.ip_permissions.is_empty() {
            return Err(usage(
                "The --protocol, --port, --cidr and --source-group options cannot be combined with --ip-permissions",
            ));
        }
        if !revoke && !self.security_group_rule_ids.is_empty() {
            return Err(usage("--security-group-rule-ids is only for revoke-security-group-ingress/egress"));
        }
        let _ = (egress, &self.group_owner);
        let mut perms = sh::structures("--ip-permissions", &self.ip_permissions, &sh::ip_permission())?;
        if simple {
            let protocol = self
                .protocol
                .as_deref()
                .ok_or_else(|| usage("--protocol is required with --port, --cidr or --source-group"))?;
            let mut p = json!({"IpProtocol": if protocol.eq_ignore_ascii_case("all") { "-1" } else { protocol }});
            if let Some(port) = &self.port {
                let (from, to) = port_arg(port)?;
                p["FromPort"] = json!(from);
                p["ToPort"] = json!(to);
            }
            if let Some(c) = &self.cidr {
                p["IpRanges"] = json!([{"CidrIp": c}]);
            }
            if let Some(g) = &self.source_group {
                let key = if g.starts_with("sg-") { "GroupId" } else { "GroupName" };
                p["UserIdGroupPairs"] = json!([{ key: g }]);
            }
            perms.push(p);
        }
        let r = Req::new()
            .set("GroupId", self.group_id.clone())
            .set("GroupName", self.group_name.clone())
            .set("IpPermissions", perms)
            .set("SecurityGroupRuleIds", self.security_group_rule_ids.clone());
        let r = if revoke { r } else { r.tags(&self.tag_specifications)? };
        Ok(r.dry(&self.dry).done())
    }
}

impl Direction {
    fn egress(&self) -> bool {
        self.egress && !self.no_egress && !self.ingress
    }
}

impl EntryArgs {
    fn request(&self) -> Result<Value, ParamError> {
        let port_range =
            self.port_range.as_deref().map(|p| sh::structure("--port-range", p, &sh::port_range())).transpose()?;
        let icmp = self
            .icmp_type_code
            .as_deref()
            .map(|p| sh::structure("--icmp-type-code", p, &sh::icmp_type_code()))
            .transpose()?;
        Ok(Req::new()
            .set("NetworkAclId", self.network_acl_id.clone())
            .set("RuleNumber", self.rule_number)
            .set("Protocol", self.protocol.clone())
            .set("RuleAction", self.rule_action.clone())
            .set("Egress", self.direction.egress())
            .set("CidrBlock", self.cidr_block.clone())
            .set("Ipv6CidrBlock", self.ipv6_cidr_block.clone())
            .set("PortRange", port_range)
            .set("IcmpTypeCode", icmp)
            .dry(&self.dry)
            .done())
    }
}

impl Ec2 {
    /// The API action and its request.
    pub fn request(&self) -> Result<(&'static str, Value), ParamError> {
        use Ec2::*;
        Ok(match self {
            DescribeSecurityGroups { group_ids, group_names, list, dry } => (
                "DescribeSecurityGroups",
                Req::new()
                    .set("GroupIds", group_ids.clone())
                    .set("GroupNames", group_names.clone())
                    .listing(list)?
                    .dry(dry)
                    .done(),
            ),
            CreateSecurityGroup { group_name, description, vpc_id, tag_specifications, dry } => (
                "CreateSecurityGroup",
                Req::new()
                    .set("GroupName", group_name.clone())
                    .set("Description", description.clone())
                    .set("VpcId", vpc_id.clone())
                    .tags(tag_specifications)?
                    .dry(dry)
                    .done(),
            ),
            DeleteSecurityGroup { group_id, group_name, dry } => (
                "DeleteSecurityGroup",
                Req::new().set("GroupId", group_id.clone()).set("GroupName", group_name.clone()).dry(dry).done(),
            ),
            AuthorizeSecurityGroupIngress(a) => ("AuthorizeSecurityGroupIngress", a.request(false, false)?),
            AuthorizeSecurityGroupEgress(a) => ("AuthorizeSecurityGroupEgress", a.request(true, false)?),
            RevokeSecurityGroupIngress(a) => ("RevokeSecurityGroupIngress", a.request(false, true)?),
            RevokeSecurityGroupEgress(a) => ("RevokeSecurityGroupEgress", a.request(true, true)?),
            DescribeSecurityGroupRules { security_group_rule_ids, list, dry } => (
                "DescribeSecurityGroupRules",
                Req::new().set("SecurityGroupRuleIds", security_group_rule_ids.clone()).listing(list)?.dry(dry).done(),
            ),
            ModifySecurityGroupRules { group_id, security_group_rules, dry } => (
                "ModifySecurityGroupRules",
                Req::new()
                    .set("GroupId", group_id.clone())
                    .set(
                        "SecurityGroupRules",
                        sh::structures("--security-group-rules", security_group_rules, &sh::rule_update())?,
                    )
                    .dry(dry)
                    .done(),
            ),
            CreateNetworkAcl { vpc_id, tag_specifications, client_token, dry } => (
                "CreateNetworkAcl",
                Req::new()
                    .set("VpcId", vpc_id.clone())
                    .set("ClientToken", client_token.clone())
                    .tags(tag_specifications)?
                    .dry(dry)
                    .done(),
            ),
            DeleteNetworkAcl { network_acl_id, dry } => {
                ("DeleteNetworkAcl", Req::new().set("NetworkAclId", network_acl_id.clone()).dry(dry).done())
            }
            DescribeNetworkAcls { network_acl_ids, list, dry } => (
                "DescribeNetworkAcls",
                Req::new().set("NetworkAclIds", network_acl_ids.clone()).listing(list)?.dry(dry).done(),
            ),
            CreateNetworkAclEntry(e) => ("CreateNetworkAclEntry", e.request()?),
            ReplaceNetworkAclEntry(e) => ("ReplaceNetworkAclEntry", e.request()?),
            DeleteNetworkAclEntry { network_acl_id, rule_number, direction, dry } => (
                "DeleteNetworkAclEntry",
                Req::new()
                    .set("NetworkAclId", network_acl_id.clone())
                    .set("RuleNumber", *rule_number)
                    .set("Egress", direction.egress())
                    .dry(dry)
                    .done(),
            ),
            ReplaceNetworkAclAssociation { association_id, network_acl_id, dry } => (
                "ReplaceNetworkAclAssociation",
                Req::new()
                    .set("AssociationId", association_id.clone())
                    .set("NetworkAclId", network_acl_id.clone())
                    .dry(dry)
                    .done(),
            ),
            DescribeNetworkInterfaces { network_interface_ids, list, dry } => (
                "DescribeNetworkInterfaces",
                Req::new().set("NetworkInterfaceIds", network_interface_ids.clone()).listing(list)?.dry(dry).done(),
            ),
            ModifyNetworkInterfaceAttribute {
                network_interface_id,
                groups,
                source_dest_check,
                no_source_dest_check,
                connection_tracking_specification,
                description,
                dry,
            } => {
                let sdc = match (source_dest_check, no_source_dest_check) {
                    (true, _) => Some(json!({"Value": true})),
                    (false, true) => Some(json!({"Value": false})),
                    _ => None,
                };
                let ct = connection_tracking_specification
                    .as_deref()
                    .map(|c| sh::structure("--connection-tracking-specification", c, &sh::conntrack()))
                    .transpose()?;
                let d = description
                    .as_deref()
                    .map(|d| sh::structure("--description", d, &sh::attribute_value()))
                    .transpose()?;
                (
                    "ModifyNetworkInterfaceAttribute",
                    Req::new()
                        .set("NetworkInterfaceId", network_interface_id.clone())
                        .set("Groups", groups.clone())
                        .set("SourceDestCheck", sdc)
                        .set("ConnectionTrackingSpecification", ct)
                        .set("Description", d)
                        .dry(dry)
                        .done(),
                )
            }
            DescribeSubnets { subnet_ids, list, dry } => {
                ("DescribeSubnets", Req::new().set("SubnetIds", subnet_ids.clone()).listing(list)?.dry(dry).done())
            }
            DescribeVpcs { vpc_ids, list, dry } => {
                ("DescribeVpcs", Req::new().set("VpcIds", vpc_ids.clone()).listing(list)?.dry(dry).done())
            }
            CreateFlowLogs {
                resource_type,
                resource_ids,
                traffic_type,
                log_destination_type,
                log_destination,
                log_group_name,
                deliver_logs_permission_arn,
                deliver_cross_account_role,
                log_format,
                max_aggregation_interval,
                destination_options,
                tag_specifications,
                client_token,
                dry,
            } => {
                let options = destination_options
                    .as_deref()
                    .map(|d| sh::structure("--destination-options", d, &sh::destination_options()))
                    .transpose()?;
                (
                    "CreateFlowLogs",
                    Req::new()
                        .set("ResourceType", resource_type.clone())
                        .set("ResourceIds", resource_ids.clone())
                        .set("TrafficType", traffic_type.clone())
                        .set("LogDestinationType", log_destination_type.clone())
                        .set("LogDestination", log_destination.clone())
                        .set("LogGroupName", log_group_name.clone())
                        .set("DeliverLogsPermissionArn", deliver_logs_permission_arn.clone())
                        .set("DeliverCrossAccountRole", deliver_cross_account_role.clone())
                        .set("LogFormat", log_format.clone())
                        .set("MaxAggregationInterval", *max_aggregation_interval)
                        .set("DestinationOptions", options)
                        .set("ClientToken", client_token.clone())
                        .tags(tag_specifications)?
                        .dry(dry)
                        .done(),
                )
            }
            DeleteFlowLogs { flow_log_ids, dry } => {
                ("DeleteFlowLogs", Req::new().set("FlowLogIds", flow_log_ids.clone()).dry(dry).done())
            }
            DescribeFlowLogs { flow_log_ids, filter, max_results, next_token, dry } => (
                "DescribeFlowLogs",
                Req::new()
                    .set("FlowLogIds", flow_log_ids.clone())
                    .set("Filter", sh::structures("--filter", filter, &sh::filter())?)
                    .set("MaxResults", *max_results)
                    .set("NextToken", next_token.clone())
                    .dry(dry)
                    .done(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(port_arg("22").unwrap(), (22, 22));
        assert_eq!(port_arg("1000-2000").unwrap(), (1000, 2000));
        assert_eq!(port_arg("-1").unwrap(), (-1, -1));
        assert_eq!(port_arg("8--1").unwrap(), (8, -1));
        assert_eq!(port_arg("-1--1").unwrap(), (-1, -1));
        assert!(port_arg("x").is_err());
        assert!(port_arg("1-2-3").is_err());
    }
}
