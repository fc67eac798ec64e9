//! Every EC2 error code of spec sections 1.6 and 3.3 (and the API's own), each
//! produced through the CLI with the input that causes it, with the config unchanged
//! afterwards (`vpcgate export` before and after).

#[path = "support/daemon.rs"]
mod daemon;

use daemon::*;
use serde_json::{json, Value};

/// The fixture with small quotas, so every limit can be hit with one request.
fn config() -> Value {
    let mut c = fixture();
    c["Appliance"]["Quotas"] = json!({
        "RulesPerSecurityGroup": 3,
        "SecurityGroupsPerNetworkInterface": 2,
        "NetworkAclEntriesPerAcl": 2,
        "NetworkAclsPerVpc": 2,
        "SecurityGroupsPerVpc": 5
    });
    c
}

/// Runs `args`, which must fail with `code` and a message containing `message`,
/// and leave the config as it was.
fn refused(d: &Daemon, code: &str, message: &str, args: &[&str]) {
    let before = d.export();
    let out = d.cli(args);
    assert_eq!(out.status, 254, "{args:?}: {out:?}");
    assert_eq!(out.code().as_deref(), Some(code), "{args:?}: {}", out.stderr);
    assert!(out.stderr.contains(message), "{args:?}: message {:?} lacks {message:?}", out.stderr);
    let action: String = args[0].split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
    assert!(out.stderr.contains(&format!("when calling the {action} operation: ")), "{}", out.stderr);
    assert_eq!(d.export(), before, "{args:?} changed the config");
}

fn ingress<'a>(group: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["authorize-security-group-ingress", "--group-id", group];
    v.extend_from_slice(more);
    v
}

#[test]
fn security_group_errors_of_spec_section_1_6() {
    let d = Daemon::start_named("errors-sg", &config());
    // Rule already exists, also when given in a non-canonical form (100.68.0.18/18).
    refused(
        &d,
        "InvalidPermission.Duplicate",
        r#"the specified rule "peer: 100.68.0.0/18, TCP, from port: 443, to port: 443, ALLOW" already exists"#,
        &ingress(SG_WEB, &["--protocol", "tcp", "--port", "443", "--cidr", "100.68.0.18/18"]),
    );
    refused(
        &d,
        "InvalidPermission.Duplicate",
        "peer: sg-0000000000000000c, TCP, from port: 5432, to port: 5432, ALLOW",
        &ingress(SG_DB, &["--protocol", "tcp", "--port", "5432", "--source-group", SG_APP, "--dry-run"]),
    );
    // The same permission twice in one request.
    refused(
        &d,
        "InvalidParameterValue",
        "The same permission must not appear multiple times",
        &ingress(
            SG_SPARE,
            &[
                "--ip-permissions",
                "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=192.0.2.0/24},{CidrIp=192.0.2.1/24}]",
            ],
        ),
    );
    // Malformed CIDR or wrong family (an IPv6 CIDR in --cidr goes to IpRanges, as with the AWS CLI).
    refused(
        &d,
        "InvalidParameterValue",
        "CIDR block ::/0 is malformed",
        &ingress(SG_SPARE, &["--protocol", "tcp", "--port", "22", "--cidr", "::/0"]),
    );
    refused(
        &d,
        "InvalidParameterValue",
        "CIDR block 10.0.0.0/33 is malformed",
        &ingress(SG_SPARE, &["--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/33"]),
    );
    // TCP without a port.
    refused(
        &d,
        "InvalidPermission.Malformed",
        "TCP/UDP port (-1) out of range",
        &ingress(SG_SPARE, &["--protocol", "tcp", "--cidr", "10.0.0.0/8"]),
    );
    refused(
        &d,
        "InvalidPermission.Malformed",
        "TCP/UDP port (70000) out of range",
        &ingress(SG_SPARE, &["--protocol", "udp", "--port", "1-70000", "--cidr", "10.0.0.0/8"]),
    );
    // Only one of from/to.
    refused(
        &d,
        "InvalidParameterValue",
        "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
        &ingress(SG_SPARE, &["--ip-permissions", "IpProtocol=tcp,FromPort=22,IpRanges=[{CidrIp=10.0.0.0/8}]"]),
    );
    refused(
        &d,
        "InvalidParameterValue",
        "Invalid value 'Must specify both from and to ports with ICMP.' for portRange.",
        &ingress(
            SG_SPARE,
            &["--ip-permissions", r#"{"IpProtocol":"icmp","ToPort":0,"IpRanges":[{"CidrIp":"10.0.0.0/8"}]}"#],
        ),
    );
    // ICMP code > 255.
    refused(
        &d,
        "InvalidParameterValue",
        "ICMP code (65535) out of range",
        &ingress(SG_SPARE, &["--protocol", "icmp", "--port", "3-65535", "--cidr", "10.0.0.0/8"]),
    );
    // FromPort > ToPort (spec section 7).
    refused(
        &d,
        "InvalidParameterValue",
        "Invalid port range: FromPort (90) is greater than ToPort (80)",
        &ingress(SG_SPARE, &["--protocol", "tcp", "--port", "90-80", "--cidr", "10.0.0.0/8"]),
    );
    // No source.
    refused(
        &d,
        "MissingParameter",
        "Missing source specification: include source security group or CIDR information",
        &ingress(SG_SPARE, &["--ip-permissions", "IpProtocol=tcp,FromPort=22,ToPort=22"]),
    );
    // Revoke of a rule that is not there.
    refused(
        &d,
        "InvalidPermission.NotFound",
        "The specified rule does not exist in this security group.",
        &[
            "revoke-security-group-ingress",
            "--group-id",
            SG_WEB,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    refused(
        &d,
        "InvalidPermission.NotFound",
        "does not exist",
        &[
            "revoke-security-group-egress",
            "--group-id",
            SG_WEB,
            "--ip-permissions",
            "IpProtocol=-1,Ipv6Ranges=[{CidrIpv6=::/0}]",
        ],
    );
    // Too many rules (quota 3 per direction and family; web has 2 inbound IPv4 rules).
    refused(
        &d,
        "RulesPerSecurityGroupLimitExceeded",
        "The maximum number of rules per security group has been reached",
        &ingress(
            SG_WEB,
            &[
                "--ip-permissions",
                "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.1.0.0/16},{CidrIp=10.2.0.0/16}]",
            ],
        ),
    );
    // Too many groups on an interface (quota 2); on an interface attached to an instance.
    refused(
        &d,
        "SecurityGroupsPerInterfaceLimitExceeded",
        "The maximum number of security groups per interface has been reached",
        &["modify-network-interface-attribute", "--network-interface-id", ENI_B, "--groups", SG_DB, SG_APP, SG_SPARE],
    );
    refused(
        &d,
        "SecurityGroupsPerInstanceLimitExceeded",
        "security groups",
        &["modify-network-interface-attribute", "--network-interface-id", ENI_A, "--groups", SG_WEB, SG_APP, SG_SPARE],
    );
    // Group problems.
    refused(
        &d,
        "InvalidGroup.NotFound",
        "The security group 'sg-00000000000000dea' does not exist",
        &["describe-security-groups", "--group-ids", "sg-00000000000000dea"],
    );
    refused(
        &d,
        "InvalidGroup.NotFound",
        "sg-00000000000000dea",
        &ingress("sg-00000000000000dea", &["--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8"]),
    );
    refused(
        &d,
        "InvalidGroup.NotFound",
        "sg-00000000000000dea",
        &ingress(SG_SPARE, &["--protocol", "tcp", "--port", "22", "--source-group", "sg-00000000000000dea"]),
    );
    refused(
        &d,
        "InvalidGroupId.Malformed",
        "Invalid id: \"sg-web\"",
        &ingress("sg-web", &["--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8"]),
    );
    refused(&d, "InvalidGroupId.Malformed", "sg-1", &["delete-security-group", "--group-id", "sg-1"]);
    refused(
        &d,
        "InvalidGroup.Duplicate",
        "The security group 'web' already exists for VPC",
        &["create-security-group", "--group-name", "web", "--description", "again", "--vpc-id", VPC],
    );
    refused(
        &d,
        "InvalidGroup.Reserved",
        "default",
        &["create-security-group", "--group-name", "default", "--description", "mine", "--vpc-id", VPC],
    );
    // Referenced by another group's rule / in use by an interface / the default group.
    refused(&d, "InvalidGroup.InUse", "sg-0000000000000000b", &["delete-security-group", "--group-id", SG_APP]);
    refused(&d, "DependencyViolation", "has a dependent object", &["delete-security-group", "--group-id", SG_WEB]);
    let default = d.ok(&["describe-security-groups", "--filters", "Name=group-name,Values=default"]);
    let default = default["SecurityGroups"][0]["GroupId"].as_str().unwrap().to_string();
    refused(&d, "CannotDelete", "cannot be deleted by a user", &["delete-security-group", "--group-id", &default]);
    // Rule ids.
    refused(
        &d,
        "InvalidSecurityGroupRuleId.Malformed",
        "sgr-xyz",
        &["revoke-security-group-ingress", "--group-id", SG_WEB, "--security-group-rule-ids", "sgr-xyz"],
    );
    refused(
        &d,
        "InvalidSecurityGroupRuleId.Malformed",
        "sg-0000000000000000a",
        &["describe-security-group-rules", "--security-group-rule-ids", "sg-0000000000000000a"],
    );
    refused(
        &d,
        "InvalidSecurityGroupRuleId.NotFound",
        "sgr-00000000000000000",
        &["revoke-security-group-ingress", "--group-id", SG_WEB, "--security-group-rule-ids", "sgr-00000000000000000"],
    );
    let egress_rule = d.ok(&["describe-security-group-rules", "--filters", &format!("Name=group-id,Values={SG_WEB}")])
        ["SecurityGroupRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["IsEgress"] == true)
        .unwrap()["SecurityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();
    refused(
        &d,
        "InvalidSecurityGroupRuleId.NotFound",
        &egress_rule,
        &["revoke-security-group-ingress", "--group-id", SG_WEB, "--security-group-rule-ids", &egress_rule],
    );
    refused(
        &d,
        "InvalidSecurityGroupRuleId.NotFound",
        "sgr-00000000000000000",
        &["modify-security-group-rules", "--group-id", SG_WEB, "--security-group-rules", "SecurityGroupRuleId=sgr-00000000000000000,SecurityGroupRule={IpProtocol=tcp,FromPort=1,ToPort=1,CidrIpv4=10.0.0.0/8}"],
    );
    // Groups per VPC (quota 5: four groups and the default one).
    refused(
        &d,
        "SecurityGroupLimitExceeded",
        "security groups; the limit is 5",
        &["create-security-group", "--group-name", "sixth", "--description", "one too many", "--vpc-id", VPC],
    );
    // Prefix lists do not exist on the appliance (spec 7.1).
    refused(
        &d,
        "InvalidParameterValue",
        "vpcgate has no managed prefix lists",
        &ingress(
            SG_SPARE,
            &["--ip-permissions", "IpProtocol=tcp,FromPort=1,ToPort=1,PrefixListIds=[{PrefixListId=pl-12345678}]"],
        ),
    );
}

#[test]
fn network_acl_errors_of_spec_section_3_3() {
    let d = Daemon::start_named("errors-nacl", &config());
    let entry = |number: &str, extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "create-network-acl-entry",
            "--network-acl-id",
            NACL_1,
            "--rule-number",
            number,
            "--protocol",
            "-1",
            "--rule-action",
            "deny",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |code: &str, message: &str, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, code, message, &args);
    };
    run(
        "NetworkAclEntryAlreadyExists",
        "The network acl entry identified by 100 already exists.",
        entry("100", &["--cidr-block", "10.0.0.0/8", "--ingress"]),
    );
    // Quota 2 per direction and family, the `*` deny included: NACL 1 has 100 + deny inbound IPv4.
    run(
        "NetworkAclEntryLimitExceeded",
        "The maximum number of network ACL entries has been reached",
        entry("200", &["--cidr-block", "10.0.0.0/8", "--ingress"]),
    );
    run(
        "NetworkAclLimitExceeded",
        "network ACLs; the limit is 2",
        vec!["create-network-acl".into(), "--vpc-id".into(), VPC.into()],
    );
    run(
        "InvalidNetworkAclEntry.NotFound",
        "The network acl entry identified by 999 (ingress) does not exist",
        vec![
            "delete-network-acl-entry".into(),
            "--network-acl-id".into(),
            NACL_1.into(),
            "--rule-number".into(),
            "999".into(),
            "--ingress".into(),
        ],
    );
    run(
        "InvalidNetworkAclEntry.NotFound",
        "300 (egress)",
        [
            "replace-network-acl-entry",
            "--network-acl-id",
            NACL_1,
            "--rule-number",
            "300",
            "--protocol",
            "-1",
            "--rule-action",
            "deny",
            "--cidr-block",
            "0.0.0.0/0",
            "--egress",
            "--dry-run",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    );
    run(
        "InvalidNetworkAclId.Malformed",
        "acl-xyz",
        vec!["delete-network-acl".into(), "--network-acl-id".into(), "acl-xyz".into()],
    );
    run(
        "InvalidNetworkAclId.Malformed",
        "acl-1",
        entry("1", &["--cidr-block", "10.0.0.0/8", "--ingress"])
            .into_iter()
            .map(|s| if s == NACL_1 { "acl-1".into() } else { s })
            .collect(),
    );
    run(
        "InvalidNetworkAclID.NotFound",
        "The network ACL ID 'acl-00000000000000dea' does not exist",
        vec!["describe-network-acls".into(), "--network-acl-ids".into(), "acl-00000000000000dea".into()],
    );
    run(
        "InvalidNetworkAclID.NotFound",
        "acl-00000000000000dea",
        vec!["delete-network-acl".into(), "--network-acl-id".into(), "acl-00000000000000dea".into()],
    );
    // A NACL in use (associated with a subnet) cannot be deleted; the default one never.
    run(
        "DependencyViolation",
        "has dependencies and cannot be deleted",
        vec!["delete-network-acl".into(), "--network-acl-id".into(), NACL_1.into()],
    );
    let default = d.ok(&["describe-network-acls", "--filters", "Name=default,Values=true"]);
    let default = default["NetworkAcls"][0]["NetworkAclId"].as_str().unwrap().to_string();
    run(
        "InvalidParameterValue",
        "cannot delete default network ACL",
        vec!["delete-network-acl".into(), "--network-acl-id".into(), default.clone()],
    );
    // Entry contents.
    run(
        "InvalidParameterValue",
        "Invalid value '32767' for ruleNumber",
        entry("32767", &["--cidr-block", "0.0.0.0/0", "--egress"]),
    );
    run(
        "MissingParameter",
        "portRange",
        vec![
            "create-network-acl-entry",
            "--network-acl-id",
            NACL_1,
            "--rule-number",
            "5",
            "--protocol",
            "tcp",
            "--rule-action",
            "allow",
            "--cidr-block",
            "10.0.0.0/8",
            "--egress",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    );
    run(
        "MissingParameter",
        "icmpTypeCode",
        vec![
            "create-network-acl-entry",
            "--network-acl-id",
            NACL_1,
            "--rule-number",
            "5",
            "--protocol",
            "58",
            "--rule-action",
            "allow",
            "--ipv6-cidr-block",
            "::/0",
            "--egress",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    );
    run(
        "InvalidParameterValue",
        "ruleAction",
        vec![
            "create-network-acl-entry",
            "--network-acl-id",
            NACL_1,
            "--rule-number",
            "5",
            "--protocol",
            "-1",
            "--rule-action",
            "maybe",
            "--cidr-block",
            "10.0.0.0/8",
            "--egress",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    );
    run(
        "InvalidParameterValue",
        "CIDR block 10.0.0/8 is malformed",
        entry("5", &["--cidr-block", "10.0.0/8", "--egress"]),
    );
    // Associations.
    run(
        "InvalidAssociationID.NotFound",
        "aclassoc-00000000000000dea",
        vec![
            "replace-network-acl-association".into(),
            "--association-id".into(),
            "aclassoc-00000000000000dea".into(),
            "--network-acl-id".into(),
            default.clone(),
        ],
    );
}

#[test]
fn other_resource_and_protocol_errors() {
    let d = Daemon::start_named("errors-other", &config());
    refused(
        &d,
        "InvalidNetworkInterfaceID.NotFound",
        "eni-00000000000000dea",
        &["describe-network-interfaces", "--network-interface-ids", "eni-00000000000000dea"],
    );
    refused(
        &d,
        "InvalidNetworkInterfaceId.Malformed",
        "eni-x",
        &["modify-network-interface-attribute", "--network-interface-id", "eni-x", "--no-source-dest-check"],
    );
    refused(
        &d,
        "InvalidParameterValue",
        "TcpEstablishedTimeout must be between 60 and 432000",
        &[
            "modify-network-interface-attribute",
            "--network-interface-id",
            ENI_A,
            "--connection-tracking-specification",
            "TcpEstablishedTimeout=10",
        ],
    );
    refused(
        &d,
        "InvalidGroup.NotFound",
        "sg-00000000000000dea",
        &["modify-network-interface-attribute", "--network-interface-id", ENI_A, "--groups", "sg-00000000000000dea"],
    );
    refused(&d, "MissingParameter", "Groups", &["modify-network-interface-attribute", "--network-interface-id", ENI_A]);
    refused(
        &d,
        "InvalidSubnetID.NotFound",
        "subnet-00000000000000dea",
        &["describe-subnets", "--subnet-ids", "subnet-00000000000000dea"],
    );
    refused(
        &d,
        "InvalidVpcID.NotFound",
        "vpc-00000000000000dea",
        &["describe-vpcs", "--vpc-ids", "vpc-00000000000000dea"],
    );
    refused(&d, "InvalidVpcId.Malformed", "vpc-1", &["create-network-acl", "--vpc-id", "vpc-1"]);
    refused(
        &d,
        "InvalidParameterValue",
        "The filter 'colour' is invalid",
        &["describe-vpcs", "--filters", "Name=colour,Values=blue"],
    );
    // Flow logs.
    let fl = [
        "create-flow-logs",
        "--resource-type",
        "NetworkInterface",
        "--resource-ids",
        ENI_A,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "g",
    ];
    d.ok(&fl);
    refused(&d, "FlowLogAlreadyExists", "same configuration", &fl);
    refused(
        &d,
        "InvalidNetworkInterfaceID.NotFound",
        "eni-00000000000000dea",
        &[
            "create-flow-logs",
            "--resource-type",
            "NetworkInterface",
            "--resource-ids",
            "eni-00000000000000dea",
            "--traffic-type",
            "ALL",
            "--log-group-name",
            "g",
        ],
    );
    refused(
        &d,
        "InvalidParameterValue",
        "TrafficType",
        &[
            "create-flow-logs",
            "--resource-type",
            "VPC",
            "--resource-ids",
            VPC,
            "--traffic-type",
            "SOME",
            "--log-group-name",
            "g",
        ],
    );
    refused(
        &d,
        "MissingParameter",
        "LogDestination",
        &[
            "create-flow-logs",
            "--resource-type",
            "VPC",
            "--resource-ids",
            VPC,
            "--traffic-type",
            "ALL",
            "--log-destination-type",
            "s3",
        ],
    );
    refused(
        &d,
        "InvalidFlowLogId.NotFound",
        "fl-00000000000000dea",
        &["delete-flow-logs", "--flow-log-ids", "fl-00000000000000dea"],
    );

    // The wire protocol's own errors (raw requests on the socket).
    let before = d.export();
    let code = |v: Value| v["Error"]["Code"].as_str().unwrap().to_string();
    assert_eq!(code(d.request(&json!({"Action": "DescribeVpcs", "Colour": "blue"}))), "UnknownParameter");
    assert_eq!(code(d.request(&json!({"Action": "DescribeVpcs", "VpcIds": "vpc-1"}))), "InvalidParameterValue");
    assert_eq!(code(d.request(&json!({"Action": "RunInstances"}))), "InvalidAction");
    assert_eq!(code(d.request(&json!({"GroupId": SG_WEB}))), "MissingAction");
    assert_eq!(code(d.request(&json!(["DescribeVpcs"]))), "MalformedQueryString");
    assert_eq!(
        code(d.request(&json!({"Action": "CreateSecurityGroup", "GroupName": "x", "VpcId": VPC}))),
        "MissingParameter"
    );
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    use std::io::{BufRead, Write};
    s.write_all(b"{not json\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    assert_eq!(code(serde_json::from_str(&line).unwrap()), "MalformedQueryString");
    let huge = format!("{{\"Action\":\"DescribeVpcs\",\"X\":\"{}\"}}\n", "a".repeat(2 << 20));
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let _ = s.write_all(huge.as_bytes());
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert!(v["Error"]["Message"].as_str().unwrap().contains("larger than"), "{v}");
    assert_eq!(d.export(), before);
}
