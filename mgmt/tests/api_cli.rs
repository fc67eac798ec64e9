//! Every `vpcgate` verb, with the AWS CLI's argument forms, through the real socket
//! of a running `vpcgated --no-dataplane`.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::*;
use serde_json::{json, Value};

fn is_id(s: &Value, prefix: &str) -> bool {
    s.as_str().is_some_and(|s| mgmt::validate::is_resource_id(s, prefix) && s.len() == prefix.len() + 18)
}

fn rule_ids(d: &Daemon, group: &str) -> Vec<(String, String)> {
    let rules = d.ok(&["describe-security-group-rules", "--filters", &format!("Name=group-id,Values={group}")]);
    let mut out: Vec<(String, String)> = rules["SecurityGroupRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["SecurityGroupRuleId"].as_str().unwrap().to_string(), rule_text(r)))
        .collect();
    out.sort();
    out
}

fn rule_text(r: &Value) -> String {
    let peer = r["CidrIpv4"]
        .as_str()
        .or(r["CidrIpv6"].as_str())
        .or(r["ReferencedGroupInfo"]["GroupId"].as_str())
        .unwrap_or("?");
    format!(
        "{} {} {}-{} {peer}",
        if r["IsEgress"] == true { "out" } else { "in" },
        r["IpProtocol"].as_str().unwrap(),
        r["FromPort"],
        r["ToPort"]
    )
}

#[test]
fn security_group_verbs() {
    let d = Daemon::start(&fixture());
    // create-security-group: an AWS-shaped id and exactly one egress rule, all to 0.0.0.0/0.
    let created =
        d.ok(&["create-security-group", "--group-name", "bastion", "--description", "SSH jump host", "--vpc-id", VPC]);
    assert!(is_id(&created["GroupId"], "sg"), "{created}");
    let sg = created["GroupId"].as_str().unwrap().to_string();
    let described = d.ok(&["describe-security-groups", "--group-ids", &sg]);
    let g = &described["SecurityGroups"][0];
    assert_eq!(g["GroupName"], "bastion");
    assert_eq!(g["Description"], "SSH jump host");
    assert_eq!(g["VpcId"], VPC);
    assert_eq!(g["IpPermissions"], json!([]));
    assert_eq!(
        g["IpPermissionsEgress"],
        json!([{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}])
    );
    let by_name = d.ok(&[
        "describe-security-groups",
        "--filters",
        "Name=group-name,Values=bastion,web",
        "Name=vpc-id,Values=vpc-*",
    ]);
    let names: Vec<&str> =
        by_name["SecurityGroups"].as_array().unwrap().iter().map(|g| g["GroupName"].as_str().unwrap()).collect();
    assert_eq!(names, ["web", "bastion"]);
    assert_eq!(d.ok(&["describe-security-groups", "--group-names", "db"])["SecurityGroups"][0]["GroupId"], SG_DB);

    // authorize-security-group-ingress: --protocol/--port/--cidr, ranges, --source-group,
    // --ip-permissions shorthand (two permissions) and JSON.
    let a = d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "203.0.113.9/24",
    ]);
    assert_eq!(a["Return"], true);
    let first = &a["SecurityGroupRules"][0];
    assert!(is_id(&first["SecurityGroupRuleId"], "sgr"), "{a}");
    assert_eq!(rule_text(first), "in tcp 22-22 203.0.113.0/24");
    d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "udp",
        "--port",
        "1000-2000",
        "--cidr",
        "10.0.0.0/8",
    ]);
    d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--source-group",
        SG_WEB,
    ]);
    d.ok(&[
        "authorize-security-group-ingress",
        "--group-name",
        "bastion",
        "--protocol",
        "icmp",
        "--port",
        "8--1",
        "--cidr",
        "192.0.2.0/24",
    ]);
    let two = d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=198.51.100.0/24,Description=partners}],Ipv6Ranges=[{CidrIpv6=2001:db8::/32}]",
        "IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-0000000000000000b}]",
    ]);
    assert_eq!(two["SecurityGroupRules"].as_array().unwrap().len(), 3);
    d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        r#"[{"IpProtocol": "icmpv6", "FromPort": -1, "ToPort": -1, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]"#,
    ]);
    d.ok(&[
        "authorize-security-group-egress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=5432,ToPort=5432,UserIdGroupPairs=[{GroupId=sg-0000000000000000b}]",
    ]);
    let rules = rules_of(&d.export(), &sg);
    assert_eq!(
        rules,
        [
            "in -1 null-null sg-0000000000000000b",
            "in icmp 8--1 192.0.2.0/24",
            "in icmpv6 -1--1 ::/0",
            "in tcp 22-22 203.0.113.0/24",
            "in tcp 443-443 198.51.100.0/24",
            "in tcp 443-443 2001:db8::/32",
            "in tcp 8080-8080 sg-0000000000000000a",
            "in udp 1000-2000 10.0.0.0/8",
            "out -1 null-null 0.0.0.0/0",
            "out tcp 5432-5432 sg-0000000000000000b",
        ]
    );
    // EC2 groups permissions by protocol and ports: tcp 443 has one permission, two peers.
    let g = &d.ok(&["describe-security-groups", "--group-ids", &sg])["SecurityGroups"][0];
    let p443: Vec<&Value> = g["IpPermissions"].as_array().unwrap().iter().filter(|p| p["FromPort"] == 443).collect();
    assert_eq!(p443.len(), 1);
    assert_eq!(p443[0]["IpRanges"], json!([{"CidrIp": "198.51.100.0/24", "Description": "partners"}]));
    assert_eq!(p443[0]["Ipv6Ranges"], json!([{"CidrIpv6": "2001:db8::/32"}]));

    // describe-security-group-rules by id and by filter.
    let ids = rule_ids(&d, &sg);
    assert_eq!(ids.len(), 10);
    let (ssh_id, _) = ids.iter().find(|(_, t)| t == "in tcp 22-22 203.0.113.0/24").unwrap().clone();
    let one = d.ok(&["describe-security-group-rules", "--security-group-rule-ids", &ssh_id]);
    assert_eq!(one["SecurityGroupRules"].as_array().unwrap().len(), 1);
    assert_eq!(one["SecurityGroupRules"][0]["GroupId"], sg.as_str());
    let f =
        d.ok(&["describe-security-group-rules", "--filters", &format!("Name=security-group-rule-id,Values={ssh_id}")]);
    assert_eq!(f["SecurityGroupRules"], one["SecurityGroupRules"]);

    // modify-security-group-rules keeps the id (and the id survives a restart).
    let m = d.ok(&[
        "modify-security-group-rules",
        "--group-id",
        &sg,
        "--security-group-rules",
        &format!("SecurityGroupRuleId={ssh_id},SecurityGroupRule={{IpProtocol=tcp,FromPort=2222,ToPort=2222,CidrIpv4=203.0.113.0/24,Description=moved}}"),
    ]);
    assert_eq!(m, json!({"Return": true}));
    let after = d.ok(&["describe-security-group-rules", "--security-group-rule-ids", &ssh_id]);
    assert_eq!(rule_text(&after["SecurityGroupRules"][0]), "in tcp 2222-2222 203.0.113.0/24");
    assert_eq!(after["SecurityGroupRules"][0]["Description"], "moved");
    let before_restart = rule_ids(&d, &sg);
    let mut d = d;
    d.restart();
    assert_eq!(rule_ids(&d, &sg), before_restart, "rule ids survive a restart");

    // revoke: by the simple arguments, by --ip-permissions, by --security-group-rule-ids.
    let r = d.ok(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "udp",
        "--port",
        "1000-2000",
        "--cidr",
        "10.0.0.0/8",
    ]);
    assert_eq!(r["Return"], true);
    assert_eq!(rule_text(&r["RevokedSecurityGroupRules"][0]), "in udp 1000-2000 10.0.0.0/8");
    d.ok(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=198.51.100.7/24}]",
    ]);
    d.ok(&["revoke-security-group-ingress", "--group-id", &sg, "--security-group-rule-ids", &ssh_id]);
    let egress_ids: Vec<String> =
        rule_ids(&d, &sg).into_iter().filter(|(_, t)| t.starts_with("out")).map(|(id, _)| id).collect();
    assert_eq!(egress_ids.len(), 2);
    d.ok(&[
        "revoke-security-group-egress",
        "--group-id",
        &sg,
        "--security-group-rule-ids",
        &egress_ids[0],
        &egress_ids[1],
    ]);
    d.ok(&["revoke-security-group-egress", "--group-id", SG_SPARE, "--protocol", "all", "--cidr", "0.0.0.0/0"]);
    assert!(rules_of(&d.export(), SG_SPARE).is_empty());
    let left: Vec<String> = rule_ids(&d, &sg).into_iter().map(|(_, t)| t).collect();
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().all(|t| t.starts_with("in")), "{left:?}");

    // delete-security-group, by id and by name.
    assert_eq!(d.ok(&["delete-security-group", "--group-id", &sg]), json!({"Return": true, "GroupId": sg}));
    assert_eq!(d.fails(&["describe-security-groups", "--group-ids", &sg]), "InvalidGroup.NotFound");
    d.ok(&["delete-security-group", "--group-name", "spare"]);
    assert_eq!(d.fails(&["describe-security-groups", "--group-ids", SG_SPARE]), "InvalidGroup.NotFound");
}

#[test]
fn network_acl_verbs() {
    let d = Daemon::start(&fixture());
    let created = d.ok(&["create-network-acl", "--vpc-id", VPC]);
    let acl = created["NetworkAcl"]["NetworkAclId"].as_str().unwrap().to_string();
    assert!(is_id(&created["NetworkAcl"]["NetworkAclId"], "acl"));
    assert_eq!(created["NetworkAcl"]["IsDefault"], false);
    assert_eq!(created["NetworkAcl"]["Associations"], json!([]));
    // A new NACL has only the `*` deny entries (the VPC has IPv6: 32768 too).
    let numbers = |n: &Value| -> Vec<(bool, i64)> {
        n["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["Egress"].as_bool().unwrap(), e["RuleNumber"].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(numbers(&created["NetworkAcl"]), [(true, 32767), (true, 32768), (false, 32767), (false, 32768)]);

    let entry = |args: &[&str]| {
        let mut all = vec!["create-network-acl-entry", "--network-acl-id", &acl];
        all.extend_from_slice(args);
        assert_eq!(d.ok(&all), json!({}));
    };
    entry(&[
        "--rule-number",
        "100",
        "--protocol",
        "tcp",
        "--port-range",
        "From=80,To=80",
        "--cidr-block",
        "0.0.0.0/0",
        "--rule-action",
        "allow",
        "--ingress",
    ]);
    entry(&[
        "--rule-number",
        "110",
        "--protocol",
        "6",
        "--port-range",
        r#"{"From": 1024, "To": 65535}"#,
        "--cidr-block",
        "10.0.0.5/8",
        "--rule-action",
        "allow",
        "--egress",
    ]);
    entry(&[
        "--rule-number",
        "120",
        "--protocol",
        "icmp",
        "--icmp-type-code",
        "Type=-1,Code=-1",
        "--cidr-block",
        "0.0.0.0/0",
        "--rule-action",
        "allow",
        "--egress",
    ]);
    entry(&[
        "--rule-number",
        "130",
        "--protocol",
        "-1",
        "--ipv6-cidr-block",
        "2001:db8::/32",
        "--rule-action",
        "deny",
        "--no-egress",
    ]);
    entry(&[
        "--rule-number",
        "140",
        "--protocol",
        "58",
        "--icmp-type-code",
        "Type=128,Code=0",
        "--ipv6-cidr-block",
        "::/0",
        "--rule-action",
        "allow",
        "--ingress",
    ]);
    let n = &d.ok(&["describe-network-acls", "--network-acl-ids", &acl])["NetworkAcls"][0];
    assert_eq!(
        numbers(n),
        [
            (true, 110),
            (true, 120),
            (true, 32767),
            (true, 32768),
            (false, 100),
            (false, 130),
            (false, 140),
            (false, 32767),
            (false, 32768)
        ]
    );
    let e110 = n["Entries"].as_array().unwrap().iter().find(|e| e["RuleNumber"] == 110).unwrap();
    assert_eq!(e110["CidrBlock"], "10.0.0.0/8", "canonical CIDR");
    assert_eq!(e110["Protocol"], "6");
    assert_eq!(e110["PortRange"], json!({"From": 1024, "To": 65535}));
    let e100 = n["Entries"].as_array().unwrap().iter().find(|e| e["RuleNumber"] == 100).unwrap();
    assert_eq!(e100["Protocol"], "6", "EC2 prints protocol numbers");

    // replace-network-acl-entry and delete-network-acl-entry.
    d.ok(&[
        "replace-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--rule-number",
        "100",
        "--protocol",
        "udp",
        "--port-range",
        "From=53,To=53",
        "--cidr-block",
        "198.18.0.0/16",
        "--rule-action",
        "deny",
        "--ingress",
    ]);
    let n = &d.ok(&["describe-network-acls", "--network-acl-ids", &acl])["NetworkAcls"][0];
    let e100 = n["Entries"].as_array().unwrap().iter().find(|e| e["RuleNumber"] == 100).unwrap();
    assert_eq!(
        (e100["Protocol"].as_str(), e100["RuleAction"].as_str(), e100["CidrBlock"].as_str()),
        (Some("17"), Some("deny"), Some("198.18.0.0/16"))
    );
    d.ok(&["delete-network-acl-entry", "--network-acl-id", &acl, "--rule-number", "120", "--egress"]);
    d.ok(&["delete-network-acl-entry", "--network-acl-id", &acl, "--rule-number", "140", "--ingress"]);
    let n = &d.ok(&["describe-network-acls", "--network-acl-ids", &acl])["NetworkAcls"][0];
    assert_eq!(
        numbers(n),
        [(true, 110), (true, 32767), (true, 32768), (false, 100), (false, 130), (false, 32767), (false, 32768)]
    );

    // describe-network-acls filters; the default NACL lists subnet 2 (not associated
    // in the config) with an association id.
    let default =
        d.ok(&["describe-network-acls", "--filters", "Name=default,Values=true", &format!("Name=vpc-id,Values={VPC}")]);
    let default = &default["NetworkAcls"][0];
    assert_eq!(default["IsDefault"], true);
    let assoc = &default["Associations"][0];
    assert_eq!(assoc["SubnetId"], SUBNET_2);
    let assoc_id = assoc["NetworkAclAssociationId"].as_str().unwrap().to_string();
    let by_subnet =
        d.ok(&["describe-network-acls", "--filters", &format!("Name=association.subnet-id,Values={SUBNET_1}")]);
    assert_eq!(by_subnet["NetworkAcls"][0]["NetworkAclId"], NACL_1);

    // replace-network-acl-association moves subnet 2 to the new NACL, then back.
    let r = d.ok(&["replace-network-acl-association", "--association-id", &assoc_id, "--network-acl-id", &acl]);
    assert!(is_id(&r["NewAssociationId"], "aclassoc"), "{r}");
    let n = &d.ok(&["describe-network-acls", "--network-acl-ids", &acl])["NetworkAcls"][0];
    assert_eq!(
        n["Associations"],
        json!([{"NetworkAclAssociationId": r["NewAssociationId"], "NetworkAclId": acl, "SubnetId": SUBNET_2}])
    );
    assert_eq!(d.fails(&["delete-network-acl", "--network-acl-id", &acl]), "DependencyViolation");
    let default_id = default["NetworkAclId"].as_str().unwrap();
    d.ok(&[
        "replace-network-acl-association",
        "--association-id",
        r["NewAssociationId"].as_str().unwrap(),
        "--network-acl-id",
        default_id,
    ]);

    // delete-network-acl.
    assert_eq!(d.ok(&["delete-network-acl", "--network-acl-id", &acl]), json!({}));
    assert_eq!(d.fails(&["describe-network-acls", "--network-acl-ids", &acl]), "InvalidNetworkAclID.NotFound");
}

#[test]
fn network_interface_subnet_and_vpc_verbs() {
    let d = Daemon::start(&fixture());
    let all = d.ok(&["describe-network-interfaces"]);
    assert_eq!(all["NetworkInterfaces"].as_array().unwrap().len(), 2);
    let a = d.ok(&["describe-network-interfaces", "--network-interface-ids", ENI_A]);
    assert_eq!(a["NetworkInterfaces"][0]["Groups"], json!([{"GroupId": SG_WEB, "GroupName": "web"}]));
    let f = d.ok(&["describe-network-interfaces", "--filters", &format!("Name=group-id,Values={SG_DB}")]);
    assert_eq!(f["NetworkInterfaces"][0]["NetworkInterfaceId"], ENI_B);
    let f = d.ok(&["describe-network-interfaces", "--filters", "Name=addresses.private-ip-address,Values=198.18.1.*"]);
    assert_eq!(f["NetworkInterfaces"][0]["NetworkInterfaceId"], ENI_A);

    let eni = |args: &[&str]| {
        let mut all = vec!["modify-network-interface-attribute", "--network-interface-id", ENI_B];
        all.extend_from_slice(args);
        assert_eq!(d.ok(&all), json!({}));
        d.ok(&["describe-network-interfaces", "--network-interface-ids", ENI_B])["NetworkInterfaces"][0].clone()
    };
    let n = eni(&["--groups", SG_DB, SG_APP]);
    assert_eq!(n["Groups"], json!([{"GroupId": SG_DB, "GroupName": "db"}, {"GroupId": SG_APP, "GroupName": "app"}]));
    assert_eq!(eni(&["--no-source-dest-check"])["SourceDestCheck"], false);
    assert_eq!(eni(&["--source-dest-check"])["SourceDestCheck"], true);
    let n =
        eni(&["--connection-tracking-specification", "TcpEstablishedTimeout=3600,UdpStreamTimeout=120,UdpTimeout=45"]);
    assert_eq!(
        n["ConnectionTrackingConfiguration"],
        json!({"TcpEstablishedTimeout": 3600, "UdpStreamTimeout": 120, "UdpTimeout": 45})
    );
    let n = eni(&["--connection-tracking-specification", "UdpTimeout=60"]);
    assert_eq!(
        n["ConnectionTrackingConfiguration"],
        json!({"TcpEstablishedTimeout": 3600, "UdpStreamTimeout": 120, "UdpTimeout": 60})
    );
    assert_eq!(eni(&["--description", "Value=database"])["Description"], "database");

    let s = d.ok(&["describe-subnets"]);
    assert_eq!(s["Subnets"].as_array().unwrap().len(), 2);
    let s = d.ok(&["describe-subnets", "--subnet-ids", SUBNET_2]);
    assert_eq!(s["Subnets"][0]["CidrBlock"], "198.18.2.0/24");
    let s = d.ok(&[
        "describe-subnets",
        "--filters",
        "Name=availability-zone,Values=us-east-1a",
        &format!("Name=vpc-id,Values={VPC}"),
    ]);
    assert_eq!(s["Subnets"].as_array().unwrap().len(), 1);
    assert_eq!(s["Subnets"][0]["SubnetId"], SUBNET_1);
    let v = d.ok(&["describe-vpcs", "--vpc-ids", VPC]);
    assert_eq!(v["Vpcs"][0]["CidrBlock"], "198.18.0.0/16");
    let v = d.ok(&["describe-vpcs", "--filters", "Name=tag:Name,Values=api-*"]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 1);
    let v = d.ok(&["describe-vpcs", "--filters", "Name=tag:Name,Values=other"]);
    assert_eq!(v["Vpcs"], json!([]));

    // The other output formats.
    let table = d.cli(&["describe-vpcs", "--output", "table"]);
    assert_eq!(table.status, 0);
    assert!(table.stdout.contains("DescribeVpcs") && table.stdout.contains("198.18.0.0/16"), "{}", table.stdout);
    let text = d.cli(&["describe-subnets", "--subnet-ids", SUBNET_1, "--output", "text"]);
    assert!(text.stdout.starts_with("SUBNETS\t"), "{}", text.stdout);
}

#[test]
fn flow_log_verbs() {
    let d = Daemon::start(&fixture());
    let c = d.ok(&[
        "create-flow-logs",
        "--resource-type",
        "NetworkInterface",
        "--resource-ids",
        ENI_A,
        ENI_B,
        "--traffic-type",
        "ALL",
        "--log-destination-type",
        "s3",
        "--log-destination",
        "arn:aws:s3:::flow-bucket/vpcgate",
        "--max-aggregation-interval",
        "60",
        "--destination-options",
        "FileFormat=parquet,HiveCompatiblePartitions=true,PerHourPartition=false",
        "--log-format",
        "${version} ${interface-id} ${srcaddr} ${dstaddr} ${action}",
    ]);
    let ids: Vec<String> =
        c["FlowLogIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| is_id(&json!(i), "fl")));
    assert_eq!(c["Unsuccessful"], json!([]));
    let v = d.ok(&[
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        VPC,
        "--traffic-type",
        "REJECT",
        "--log-group-name",
        "vpc-rejects",
    ]);
    let vpc_log = v["FlowLogIds"][0].as_str().unwrap().to_string();

    let all = d.ok(&["describe-flow-logs"]);
    assert_eq!(all["FlowLogs"].as_array().unwrap().len(), 3);
    let one = d.ok(&["describe-flow-logs", "--filter", &format!("Name=resource-id,Values={ENI_B}")]);
    let f = &one["FlowLogs"][0];
    assert_eq!(f["ResourceId"], ENI_B);
    assert_eq!(f["TrafficType"], "ALL");
    assert_eq!(f["LogDestinationType"], "s3");
    assert_eq!(f["LogDestination"], "arn:aws:s3:::flow-bucket/vpcgate");
    assert_eq!(f["MaxAggregationInterval"], 60);
    assert_eq!(
        f["DestinationOptions"],
        json!({"FileFormat": "parquet", "HiveCompatiblePartitions": true, "PerHourPartition": false})
    );
    assert_eq!(f["FlowLogStatus"], "ACTIVE");
    assert!(f["CreationTime"].as_str().unwrap().ends_with('Z'));
    let by_id = d.ok(&["describe-flow-logs", "--flow-log-ids", &vpc_log]);
    assert_eq!(by_id["FlowLogs"][0]["LogGroupName"], "vpc-rejects");
    assert_eq!(by_id["FlowLogs"][0]["LogDestinationType"], "cloud-watch-logs");
    assert!(by_id["FlowLogs"][0]["LogFormat"].as_str().unwrap().starts_with("${version} ${account-id}"));

    assert_eq!(d.ok(&["delete-flow-logs", "--flow-log-ids", &ids[0], &vpc_log]), json!({"Unsuccessful": []}));
    let left = d.ok(&["describe-flow-logs"]);
    assert_eq!(left["FlowLogs"].as_array().unwrap().len(), 1);
    assert_eq!(left["FlowLogs"][0]["FlowLogId"], ids[1].as_str());
}

#[test]
fn export_import_dry_run_and_restart() {
    let d = Daemon::start(&fixture());
    d.ok(&[
        "authorize-security-group-ingress",
        "--group-id",
        SG_APP,
        "--protocol",
        "tcp",
        "--port",
        "9000",
        "--cidr",
        "198.18.1.0/24",
    ]);
    let exported = d.export();
    // The export is the describe outputs: NACLs with their `*` entries, rule ids.
    assert!(exported["NetworkAcls"][0]["Entries"].as_array().unwrap().iter().any(|e| e["RuleNumber"] == 32767));
    assert!(exported["SecurityGroupRules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| is_id(&r["SecurityGroupRuleId"], "sgr") || r["SecurityGroupRuleId"].as_str().unwrap().len() == 21));

    // Import of the export changes nothing (dry run or not); one file per describe output works too.
    let file = d.dir.join("export.json");
    std::fs::write(&file, serde_json::to_string(&exported).unwrap()).unwrap();
    let dry = d.cli(&["import", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(dry.status, 0, "{dry:?}");
    assert_eq!(dry.json()["DryRun"], true);
    d.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(d.export(), exported);
    let mut files = Vec::new();
    for key in [
        "Vpcs",
        "Subnets",
        "NetworkAcls",
        "SecurityGroups",
        "SecurityGroupRules",
        "NetworkInterfaces",
        "FlowLogs",
        "Appliance",
    ] {
        let f = d.dir.join(format!("{key}.json"));
        std::fs::write(&f, serde_json::to_string(&json!({ key: exported[key], "NextToken": null })).unwrap()).unwrap();
        files.push(f.to_str().unwrap().to_string());
    }
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    let imported = d.ok(&args);
    assert_eq!(imported["Imported"]["SecurityGroups"], 5);
    assert_eq!(d.export(), exported);

    // An import that does not validate changes nothing.
    let mut bad = exported.clone();
    bad["SecurityGroups"][0]["IpPermissions"][0]["FromPort"] = json!(99999);
    std::fs::write(&file, serde_json::to_string(&bad).unwrap()).unwrap();
    let out = d.cli(&["import", file.to_str().unwrap()]);
    assert_eq!((out.status, out.code().as_deref()), (254, Some("InvalidPermission.Malformed")), "{out:?}");
    let out = d.cli(&["import", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status, 254);
    assert_eq!(d.export(), exported);

    // --dry-run on a write verb: DryRunOperation after validation, nothing changed.
    let out =
        d.cli(&["create-security-group", "--group-name", "x", "--description", "x", "--vpc-id", VPC, "--dry-run"]);
    assert_eq!((out.status, out.code().as_deref()), (254, Some("DryRunOperation")));
    assert!(out.stderr.contains(
        "when calling the CreateSecurityGroup operation: Request would have succeeded, but DryRun flag is set."
    ));
    assert_eq!(
        d.fails(&[
            "authorize-security-group-ingress",
            "--group-id",
            SG_APP,
            "--protocol",
            "tcp",
            "--port",
            "9000",
            "--cidr",
            "198.18.1.0/24",
            "--dry-run"
        ]),
        "InvalidPermission.Duplicate"
    );
    assert_eq!(d.fails(&["describe-vpcs", "--dry-run"]), "DryRunOperation");
    assert_eq!(d.export(), exported);

    // Restart (SIGTERM, then start again with the initial config given): the saved config wins.
    let mut d = d;
    d.restart();
    assert_eq!(d.export(), exported);
}

#[test]
fn usage_and_connection_errors_exit_like_the_aws_cli() {
    let d = Daemon::start(&fixture());
    let bad = d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        SG_APP,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=x",
    ]);
    assert_eq!(bad.status, 252, "{bad:?}");
    assert!(bad.stderr.contains("Parameter validation failed") && bad.stderr.contains("FromPort"), "{}", bad.stderr);
    let bad = d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        SG_APP,
        "--ip-permissions",
        "IpProtocol=tcp,IpRanges=[{CidrIp=1.2.3.4/32}",
    ]);
    assert_eq!(bad.status, 252);
    assert!(bad.stderr.contains("Error parsing parameter '--ip-permissions'"), "{}", bad.stderr);
    assert_eq!(d.cli(&["describe-vpcs", "--no-such-option"]).status, 252);
    assert_eq!(d.cli(&["no-such-verb"]).status, 252);
    assert_eq!(
        d.cli(&["create-network-acl-entry", "--network-acl-id", NACL_1]).status,
        252,
        "missing required arguments"
    );
    let gone = run_cli(&d.dir.join("nowhere.sock"), &["describe-vpcs"], None);
    assert_eq!(gone.status, 255);
    assert!(gone.stderr.contains("Could not connect to the endpoint URL"), "{}", gone.stderr);
    assert_eq!(d.cli(&["--help"]).status, 0);
}
