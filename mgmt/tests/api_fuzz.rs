//! Bounded fuzzing (`VPCGATE_FUZZ_SECS`, default 10) of the API's request decoder and
//! of the CLI's parameter parsing (shorthand, JSON, whole command lines): no input
//! panics, every bad request is answered with an EC2-style error
//! (`{"Error": {"Code": ..., "Message": ...}}`), every bad parameter with the AWS
//! CLI's parameter error, and every accepted change leaves a valid config.

#[path = "support/daemon.rs"]
mod daemon;

use std::time::{Duration, Instant};

use clap::Parser;
use daemon::*;
use mgmt::api::{Engine, Role};
use mgmt::cli::output::{render, Format};
use mgmt::cli::shorthand::{self as sh, Shape};
use mgmt::cli::{Cli, Command};
use mgmt::model::Config;
use mgmt::validate::check;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

fn budget() -> Duration {
    let secs: f64 = std::env::var("VPCGATE_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

fn rng(name: &str) -> ChaCha8Rng {
    let seed = std::env::var("VPCGATE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("{name}: seed {seed} (VPCGATE_FUZZ_SEED to replay)");
    ChaCha8Rng::seed_from_u64(seed)
}

fn engine() -> Engine {
    let cfg: Config = serde_json::from_value(fixture()).unwrap();
    Engine::new(check(&cfg).unwrap(), None, Box::new(|_| {}))
}

/// An answer is a JSON object: a result, or an EC2 error with a code and a message.
fn assert_ec2_answer(input: &str, answer: &str) -> Value {
    let v: Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("answer to {input:?} is not JSON ({e}): {answer}"));
    assert!(v.is_object(), "answer to {input:?} is not an object: {answer}");
    if let Some(err) = v.get("Error") {
        let code = err["Code"].as_str().unwrap_or_else(|| panic!("no Code in {answer}"));
        assert!(!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'), "bad code {code:?}");
        assert!(err["Message"].is_string(), "no Message in {answer}");
    }
    v
}

/// Valid requests for every action, to mutate.
fn corpus() -> Vec<Value> {
    let perm = json!([{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "x"}],
                       "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}], "UserIdGroupPairs": [{"GroupId": SG_WEB}]}]);
    let filters = json!([{"Name": "vpc-id", "Values": [VPC, "vpc-*"]}]);
    vec![
        json!({"Action": "DescribeSecurityGroups", "GroupIds": [SG_WEB], "Filters": filters}),
        json!({"Action": "CreateSecurityGroup", "GroupName": "g", "Description": "d", "VpcId": VPC,
               "TagSpecifications": [{"ResourceType": "security-group", "Tags": [{"Key": "k", "Value": "v"}]}]}),
        json!({"Action": "DeleteSecurityGroup", "GroupId": SG_SPARE}),
        json!({"Action": "AuthorizeSecurityGroupIngress", "GroupId": SG_SPARE, "IpPermissions": perm}),
        json!({"Action": "AuthorizeSecurityGroupEgress", "GroupId": SG_SPARE, "IpPermissions": perm}),
        json!({"Action": "RevokeSecurityGroupIngress", "GroupId": SG_WEB, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}),
        json!({"Action": "RevokeSecurityGroupEgress", "GroupId": SG_WEB, "SecurityGroupRuleIds": ["sgr-00000000000000000"]}),
        json!({"Action": "DescribeSecurityGroupRules", "Filters": [{"Name": "group-id", "Values": [SG_WEB]}]}),
        json!({"Action": "ModifySecurityGroupRules", "GroupId": SG_WEB, "SecurityGroupRules": [{"SecurityGroupRuleId": "sgr-00000000000000000",
               "SecurityGroupRule": {"IpProtocol": "udp", "FromPort": 1, "ToPort": 2, "CidrIpv4": "1.2.3.4/32"}}]}),
        json!({"Action": "DescribeNetworkAcls", "NetworkAclIds": [NACL_1], "Filters": filters}),
        json!({"Action": "CreateNetworkAcl", "VpcId": VPC}),
        json!({"Action": "DeleteNetworkAcl", "NetworkAclId": NACL_1}),
        json!({"Action": "CreateNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": 7, "Protocol": "6", "RuleAction": "allow",
               "Egress": false, "CidrBlock": "10.0.0.0/8", "PortRange": {"From": 1, "To": 2}}),
        json!({"Action": "ReplaceNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": 100, "Protocol": "1", "RuleAction": "deny",
               "Egress": true, "Ipv6CidrBlock": "::/0", "IcmpTypeCode": {"Type": -1, "Code": -1}}),
        json!({"Action": "DeleteNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": 100, "Egress": true}),
        json!({"Action": "ReplaceNetworkAclAssociation", "AssociationId": "aclassoc-00000000000000001", "NetworkAclId": NACL_1}),
        json!({"Action": "DescribeNetworkInterfaces", "NetworkInterfaceIds": [ENI_A]}),
        json!({"Action": "ModifyNetworkInterfaceAttribute", "NetworkInterfaceId": ENI_B, "Groups": [SG_DB, SG_APP],
               "SourceDestCheck": {"Value": false}, "ConnectionTrackingSpecification": {"TcpEstablishedTimeout": 100, "UdpTimeout": 40},
               "Description": {"Value": "d"}}),
        json!({"Action": "DescribeSubnets", "SubnetIds": [SUBNET_1], "Filters": filters}),
        json!({"Action": "DescribeVpcs", "VpcIds": [VPC], "DryRun": true}),
        json!({"Action": "CreateFlowLogs", "ResourceType": "VPC", "ResourceIds": [VPC], "TrafficType": "ALL", "LogDestinationType": "s3",
               "LogDestination": "arn:aws:s3:::b", "MaxAggregationInterval": 60, "DestinationOptions": {"FileFormat": "parquet"}}),
        json!({"Action": "DeleteFlowLogs", "FlowLogIds": ["fl-00000000000000000"]}),
        json!({"Action": "DescribeFlowLogs", "Filter": [{"Name": "resource-id", "Values": [VPC]}]}),
        json!({"Action": "ExportConfig"}),
        json!({"Action": "ImportConfig", "Config": fixture(), "DryRun": true}),
    ]
}

fn random_scalar(rng: &mut impl Rng) -> Value {
    match rng.gen_range(0..12) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen_range(-3i64..70000)),
        3 => json!(rng.gen::<i64>()),
        4 => json!(rng.gen::<f64>() * 1e6),
        5 => json!(
            ["sg-", "acl-", "eni-", "sgr-", "vpc-", "subnet-", "fl-", "aclassoc-"].choose(rng).unwrap().to_string()
                + &"0123456789abcdef".chars().collect::<Vec<_>>().choose_multiple(rng, 17).collect::<String>()
        ),
        6 => json!(["tcp", "udp", "icmp", "icmpv6", "-1", "all", "58", "300", "TCP", ""].choose(rng).unwrap()),
        7 => json!(["0.0.0.0/0", "::/0", "10.0.0.0/33", "1.2.3.4", "2001:db8::/129", "a/b", "10.0.0.0/8"]
            .choose(rng)
            .unwrap()),
        8 => json!([SG_WEB, SG_DB, SG_APP, SG_SPARE, NACL_1, ENI_A, ENI_B, VPC, SUBNET_1].choose(rng).unwrap()),
        9 => json!("x".repeat(rng.gen_range(0..300))),
        10 => json!(rng.gen_range(1..40000).to_string()),
        _ => json!(String::from_utf8_lossy(&(0..rng.gen_range(0..12)).map(|_| rng.gen::<u8>()).collect::<Vec<_>>())),
    }
}

fn random_value(rng: &mut impl Rng, depth: u32) -> Value {
    if depth > 2 || rng.gen_bool(0.6) {
        return random_scalar(rng);
    }
    if rng.gen_bool(0.5) {
        Value::Array((0..rng.gen_range(0..4)).map(|_| random_value(rng, depth + 1)).collect())
    } else {
        let keys = [
            "IpProtocol",
            "FromPort",
            "ToPort",
            "CidrIp",
            "Value",
            "Name",
            "Values",
            "GroupId",
            "From",
            "To",
            "Type",
            "Zz",
        ];
        let mut m = Map::new();
        for _ in 0..rng.gen_range(0..4) {
            m.insert(keys.choose(rng).unwrap().to_string(), random_value(rng, depth + 1));
        }
        Value::Object(m)
    }
}

/// Replaces, removes or adds one node somewhere in `v`.
fn mutate(rng: &mut impl Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.gen_bool(0.7) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = keys.choose(rng).unwrap().clone();
            match rng.gen_range(0..6) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("{k}X"), random_value(rng, 0));
                }
                2 | 3 => *m.get_mut(&k).unwrap() = random_value(rng, 0),
                _ => mutate(rng, m.get_mut(&k).unwrap()),
            }
        }
        Value::Array(a) if !a.is_empty() && rng.gen_bool(0.7) => {
            let i = rng.gen_range(0..a.len());
            match rng.gen_range(0..4) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let dup = a[i].clone();
                    a.push(dup);
                }
                _ => mutate(rng, &mut a[i]),
            }
        }
        _ => *v = random_value(rng, 0),
    }
}

/// Byte-level damage to a request line.
fn damage(rng: &mut impl Rng, line: &str) -> String {
    let mut b = line.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..4) {
        if b.is_empty() {
            break;
        }
        let i = rng.gen_range(0..b.len());
        match rng.gen_range(0..4) {
            0 => b[i] = rng.gen(),
            1 => {
                b.remove(i);
            }
            2 => b.insert(i, *b"{}[]\",:\\0-e".choose(rng).unwrap()),
            _ => b.truncate(i),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn request_decoder_answers_every_input_with_a_result_or_an_ec2_error() {
    let mut rng = rng("request fuzz");
    let corpus = corpus();
    let mut e = engine();
    let t0 = Instant::now();
    let (mut n, mut errors, mut writes) = (0u64, 0u64, 0u64);
    while t0.elapsed() < budget() {
        if n % 300 == 0 {
            e = engine();
        }
        let mut req = corpus.choose(&mut rng).unwrap().clone();
        for _ in 0..rng.gen_range(0..4) {
            mutate(&mut rng, &mut req);
        }
        let mut line = req.to_string();
        if rng.gen_bool(0.2) {
            line = damage(&mut rng, &line);
        }
        let before = e.current().config.clone();
        let answer = assert_ec2_answer(&line, &e.handle_line(&line, Role::Admin));
        if answer.get("Error").is_some() {
            errors += 1;
            assert_eq!(e.current().config, before, "a refused request changed the config: {line}");
        } else if e.current().config != before {
            writes += 1;
            check(&e.current().config).unwrap_or_else(|err| panic!("{line} left an invalid config: {err}"));
        }
        // The read-only role never changes anything.
        let ro_before = e.current().config.clone();
        assert_ec2_answer(&line, &e.handle_line(&line, Role::ReadOnly));
        assert_eq!(e.current().config, ro_before, "read-only request changed the config: {line}");
        n += 1;
    }
    eprintln!("request fuzz: {n} requests, {errors} refused with EC2 errors, {writes} accepted changes, no panic");
    assert!(n > 100, "the fuzzer ran too few requests ({n})");
}

fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("--ip-permissions", sh::ip_permission()),
        ("--filters", sh::filter()),
        ("--port-range", sh::port_range()),
        ("--icmp-type-code", sh::icmp_type_code()),
        ("--security-group-rules", sh::rule_update()),
        ("--connection-tracking-specification", sh::conntrack()),
        ("--tag-specifications", sh::tag_specification()),
        ("--destination-options", sh::destination_options()),
    ]
}

const SEEDS: &[&str] = &[
    "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.0.0.0/8,Description=ssh}]",
    "IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-0000000000000000a}],Ipv6Ranges=[{CidrIpv6=::/0}]",
    "Name=group-id,Values=sg-1,sg-2",
    "Name=tag:Name,Values=[a,'b,c',\"d\"]",
    "From=80,To=81",
    "Type=-1,Code=-1",
    "SecurityGroupRuleId=sgr-00000000000000000,SecurityGroupRule={IpProtocol=tcp,FromPort=1,ToPort=2,CidrIpv4=1.2.3.4/32}",
    "TcpEstablishedTimeout=3600,UdpStreamTimeout=120,UdpTimeout=45",
    "ResourceType=security-group,Tags=[{Key=k,Value=v}]",
    "FileFormat=parquet,HiveCompatiblePartitions=true",
    r#"[{"IpProtocol":"udp","FromPort":53,"ToPort":"53","IpRanges":[{"CidrIp":"10.0.0.0/8"}]}]"#,
    r#"{"From": 1, "To": 2}"#,
];

fn mutate_text(rng: &mut impl Rng, s: &str) -> String {
    let alphabet: Vec<char> = "=,[]{}'\"\\ -1/:.aZ09xIpProtocolFromPortValues".chars().collect();
    let mut c: Vec<char> = s.chars().collect();
    for _ in 0..rng.gen_range(1..3) {
        let i = rng.gen_range(0..=c.len());
        match rng.gen_range(0..3) {
            0 if i < c.len() => {
                c.remove(i);
            }
            1 if i < c.len() => c[i] = *alphabet.choose(rng).unwrap(),
            _ => c.insert(i, *alphabet.choose(rng).unwrap()),
        }
    }
    c.into_iter().collect()
}

#[test]
fn cli_parameter_parser_answers_every_input_with_a_value_or_a_parameter_error() {
    let mut rng = rng("shorthand fuzz");
    let shapes = shapes();
    let mut e = engine();
    let t0 = Instant::now();
    let (mut n, mut parsed) = (0u64, 0u64);
    while t0.elapsed() < budget() {
        if n % 300 == 0 {
            e = engine();
        }
        let input = if rng.gen_bool(0.2) {
            let alphabet: Vec<char> = "=,[]{}'\"\\ -1/:.aZ09".chars().collect();
            (0..rng.gen_range(0..30)).map(|_| *alphabet.choose(&mut rng).unwrap()).collect()
        } else {
            let seed = *SEEDS.choose(&mut rng).unwrap();
            mutate_text(&mut rng, seed)
        };
        let (option, shape) = shapes.choose(&mut rng).unwrap();
        match sh::structures(option, std::slice::from_ref(&input), shape) {
            Ok(values) => {
                parsed += 1;
                if *option == "--ip-permissions" {
                    // What the parser accepts, the API answers EC2-style.
                    let req = json!({"Action": "AuthorizeSecurityGroupIngress", "GroupId": SG_SPARE, "IpPermissions": values});
                    let line = req.to_string();
                    assert_ec2_answer(&input, &e.handle_line(&line, Role::Admin));
                }
            }
            Err(err) => assert!(
                err.0.starts_with("Error parsing parameter '") || err.0.starts_with("Parameter validation failed:"),
                "{input:?}: {err}"
            ),
        }
        n += 1;
    }
    eprintln!("shorthand fuzz: {n} inputs, {parsed} parsed, no panic");
    assert!(n > 100);
}

#[test]
fn whole_command_lines_parse_or_fail_as_usage_errors() {
    let mut rng = rng("command-line fuzz");
    let words = [
        "authorize-security-group-ingress",
        "revoke-security-group-egress",
        "create-network-acl-entry",
        "describe-vpcs",
        "modify-network-interface-attribute",
        "create-flow-logs",
        "modify-security-group-rules",
        "--group-id",
        SG_WEB,
        "--protocol",
        "tcp",
        "-1",
        "--port",
        "22",
        "1-2",
        "8--1",
        "x",
        "--cidr",
        "10.0.0.0/8",
        "--ip-permissions",
        SEEDS[0],
        "--filters",
        SEEDS[2],
        "--network-acl-id",
        NACL_1,
        "--rule-number",
        "100",
        "--rule-action",
        "allow",
        "--egress",
        "--ingress",
        "--port-range",
        SEEDS[4],
        "--icmp-type-code",
        SEEDS[5],
        "--cidr-block",
        "--groups",
        "--dry-run",
        "--network-interface-id",
        ENI_A,
        "--connection-tracking-specification",
        SEEDS[7],
        "--resource-ids",
        VPC,
        "--resource-type",
        "VPC",
        "--traffic-type",
        "ALL",
        "--security-group-rules",
        SEEDS[6],
        "--output",
        "table",
    ];
    let mut e = engine();
    let t0 = Instant::now();
    let (mut n, mut requests) = (0u64, 0u64);
    while t0.elapsed() < budget() {
        if n % 300 == 0 {
            e = engine();
        }
        let mut argv = vec!["vpcgate".to_string(), words[..7].choose(&mut rng).unwrap().to_string()];
        for _ in 0..rng.gen_range(0..10) {
            let w = words.choose(&mut rng).unwrap().to_string();
            argv.push(if rng.gen_bool(0.1) { mutate_text(&mut rng, &w) } else { w });
        }
        if let Ok(cli) = Cli::try_parse_from(&argv) {
            if let Command::Ec2(verb) = cli.command {
                match verb.request() {
                    Ok((action, mut req)) => {
                        requests += 1;
                        req["Action"] = json!(action);
                        let line = req.to_string();
                        let answer = assert_ec2_answer(&line, &e.handle_line(&line, Role::Admin));
                        // Every output format renders every answer.
                        for f in [Format::Json, Format::Table, Format::Text] {
                            let _ = render(&answer, f, action);
                        }
                    }
                    Err(err) => assert!(!err.0.is_empty()),
                }
            }
        }
        n += 1;
    }
    eprintln!("command-line fuzz: {n} command lines, {requests} became requests, no panic");
    assert!(n > 100);
}
