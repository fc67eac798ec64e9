//! `vpcgate audit`: a config with exactly one instance of every finding reports each
//! exactly once, on the right resource; a clean config reports none. The CLI forms
//! (`--config`, `--describe`, the live daemon; table, JSON and SARIF; `--fail-on`) and
//! stale references to groups of a peered VPC that went away.

#[path = "support/daemon.rs"]
mod daemon;

use std::collections::BTreeSet;
use std::path::Path;

use daemon::{run_cli, temp_dir, Daemon, Out};
use mgmt::audit::{audit, Finding, Severity};
use mgmt::model::Config;
use mgmt::validate::check;
use serde_json::{json, Value};

const VPC: &str = "vpc-0a000000000000001";
const OWNER: &str = "111122223333";
const SUBNET_1: &str = "subnet-0a000000000000001";
const SUBNET_2: &str = "subnet-0a000000000000002";
const NACL: &str = "acl-0a000000000000001";
const SG_DEFAULT: &str = "sg-0a00000000000000d";
const SG_OPEN: &str = "sg-0a000000000000001";
const SG_ADMIN: &str = "sg-0a000000000000002";
const SG_EGRESS: &str = "sg-0a000000000000003";
const SG_APP: &str = "sg-0a000000000000004";
const SG_WEB: &str = "sg-0a000000000000005";
const SG_BUSY: &str = "sg-0a000000000000006";
const SG_SPARE: &str = "sg-0a000000000000007";
const SG_DB: &str = "sg-0a000000000000008";
/// A group of a peered VPC (another account) that is gone.
const SG_GONE: &str = "sg-0b000000000000009";
const ENI_1: &str = "eni-0a000000000000001";
const ENI_2: &str = "eni-0a000000000000002";
const ENI_3: &str = "eni-0a000000000000003";
const ENI_4: &str = "eni-0a000000000000004";

fn rule(proto: &str, port: Option<i64>, cidr: &str, description: Option<&str>) -> Value {
    let mut r = json!({"IpProtocol": proto, "IpRanges": [{"CidrIp": cidr}]});
    if let Some(p) = port {
        r["FromPort"] = json!(p);
        r["ToPort"] = json!(p);
    }
    if let Some(d) = description {
        r["IpRanges"][0]["Description"] = json!(d);
    }
    r
}

fn group_rule(port: i64, pair: Value) -> Value {
    json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]})
}

fn group(id: &str, name: &str, ingress: Vec<Value>, egress: Vec<Value>) -> Value {
    json!({"GroupId": id, "GroupName": name, "Description": format!("{name} tier"), "VpcId": VPC, "OwnerId": OWNER,
           "IpPermissions": ingress, "IpPermissionsEgress": egress})
}

fn eni(id: &str, subnet: &str, mac: &str, ip: &str, groups: &[&str]) -> Value {
    json!({"NetworkInterfaceId": id, "SubnetId": subnet, "MacAddress": mac, "PrivateIpAddress": ip,
           "Groups": groups.iter().map(|g| json!({"GroupId": g})).collect::<Vec<_>>()})
}

/// A stale reference, as `describe-security-groups` prints one whose peering is gone.
fn stale_pair() -> Value {
    json!({"GroupId": SG_GONE, "UserId": "444455556666", "VpcId": "vpc-0b000000000000001",
           "VpcPeeringConnectionId": "pcx-0c000000000000001", "PeeringStatus": "deleted",
           "Description": "db clients in the peered VPC"})
}

/// Exactly one instance of every finding (see `expected()`).
fn risky() -> Value {
    let d = Some("described");
    json!({
        "Vpcs": [{"VpcId": VPC, "CidrBlock": "10.20.0.0/16", "OwnerId": OWNER}],
        "Subnets": [{"SubnetId": SUBNET_1, "VpcId": VPC, "CidrBlock": "10.20.1.0/24"},
                    {"SubnetId": SUBNET_2, "VpcId": VPC, "CidrBlock": "10.20.2.0/24"}],
        "NetworkAcls": [{"NetworkAclId": NACL, "VpcId": VPC, "IsDefault": false,
                         "Associations": [{"SubnetId": SUBNET_1}],
                         "Entries": [
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0"},
                            {"RuleNumber": 200, "Protocol": "6", "RuleAction": "deny", "Egress": false, "CidrBlock": "0.0.0.0/0",
                             "PortRange": {"From": 22, "To": 22}},
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": true, "CidrBlock": "0.0.0.0/0"}]}],
        "SecurityGroups": [
            // default-sg-has-rules and default-sg-in-use (ENI 2)
            group(SG_DEFAULT, "default", vec![rule("tcp", Some(443), "10.20.0.0/16", None)], vec![]),
            // open-all-ports
            group(SG_OPEN, "open", vec![rule("-1", None, "0.0.0.0/0", d)], vec![]),
            // open-admin-port
            group(SG_ADMIN, "admin", vec![rule("tcp", Some(22), "0.0.0.0/0", d)], vec![]),
            // unrestricted-egress
            group(SG_EGRESS, "egress", vec![], vec![rule("-1", None, "0.0.0.0/0", d)]),
            // rule-without-description and stale-group-reference
            group(SG_APP, "app", vec![rule("tcp", Some(8080), "10.20.1.0/24", None), group_rule(5432, stale_pair())],
                  vec![rule("tcp", Some(443), "0.0.0.0/0", d)]),
            // covered-sg-rule: the /24 adds nothing to the /16
            group(SG_WEB, "web", vec![rule("tcp", Some(443), "10.20.0.0/16", d), rule("tcp", Some(443), "10.20.1.0/24", d)], vec![]),
            // quota-near-limit: 4 inbound IPv4 rules of 5
            group(SG_BUSY, "busy", (1001..=1004).map(|p| rule("tcp", Some(p), "10.20.0.0/16", d)).collect(), vec![]),
            // unused-sg
            group(SG_SPARE, "spare", vec![], vec![]),
        ],
        "NetworkInterfaces": [
            eni(ENI_1, SUBNET_1, "02:00:00:00:01:01", "10.20.1.10", &[SG_OPEN, SG_ADMIN, SG_EGRESS]),
            eni(ENI_2, SUBNET_1, "02:00:00:00:01:02", "10.20.1.20", &[SG_DEFAULT]),
            eni(ENI_3, SUBNET_1, "02:00:00:00:01:03", "10.20.1.30", &[SG_APP, SG_WEB, SG_BUSY]),
            // eni-without-flow-log: the flow log covers subnet 1 only
            eni(ENI_4, SUBNET_2, "02:00:00:00:01:04", "10.20.2.10", &[SG_WEB]),
        ],
        "FlowLogs": [{"FlowLogId": "fl-0a000000000000001", "ResourceId": SUBNET_1, "TrafficType": "ALL",
                      "LogDestinationType": "cloud-watch-logs", "LogGroupName": "audit-test"}],
        "Appliance": {"Quotas": {"RulesPerSecurityGroup": 5}, "Ports": [
            {"Name": "p1", "Interface": "vg-1", "NetworkInterfaceIds": [ENI_1, ENI_2]},
            {"Name": "p3", "Interface": "vg-3", "NetworkInterfaceIds": [ENI_3, ENI_4]}]}
    })
}

/// (check, severity, resource, a piece of the rule text) for `risky()`.
fn expected() -> Vec<(&'static str, Severity, &'static str, &'static str)> {
    vec![
        ("open-all-ports", Severity::Critical, SG_OPEN, "all from 0.0.0.0/0"),
        ("open-admin-port", Severity::High, SG_ADMIN, "tcp 22 from 0.0.0.0/0"),
        ("unrestricted-egress", Severity::Medium, SG_EGRESS, "all to 0.0.0.0/0"),
        ("rule-without-description", Severity::Low, SG_APP, "tcp 8080 from 10.20.1.0/24"),
        ("stale-group-reference", Severity::Medium, SG_APP, "tcp 5432 from sg-0b000000000000009"),
        ("covered-sg-rule", Severity::Low, SG_WEB, "tcp 443 from 10.20.1.0/24"),
        ("default-sg-has-rules", Severity::Medium, SG_DEFAULT, ""),
        ("default-sg-in-use", Severity::Medium, SG_DEFAULT, ""),
        ("unused-sg", Severity::Info, SG_SPARE, ""),
        ("quota-near-limit", Severity::Info, SG_BUSY, ""),
        ("shadowed-nacl-entry", Severity::Medium, NACL, "200 deny tcp 22-22 0.0.0.0/0"),
        ("eni-without-flow-log", Severity::Low, ENI_4, ""),
    ]
}

/// Least privilege, every rule described, a flow log over the whole VPC, the default
/// group empty and unused, NACL entries that each match something.
fn clean() -> Value {
    let pair = |g: &str, d: &str| json!({"GroupId": g, "UserId": OWNER, "Description": d});
    json!({
        "Vpcs": [{"VpcId": VPC, "CidrBlock": "10.20.0.0/16", "OwnerId": OWNER}],
        "Subnets": [{"SubnetId": SUBNET_1, "VpcId": VPC, "CidrBlock": "10.20.1.0/24"},
                    {"SubnetId": SUBNET_2, "VpcId": VPC, "CidrBlock": "10.20.2.0/24"}],
        "NetworkAcls": [{"NetworkAclId": NACL, "VpcId": VPC, "IsDefault": false,
                         "Associations": [{"SubnetId": SUBNET_1}, {"SubnetId": SUBNET_2}],
                         "Entries": [
                            {"RuleNumber": 100, "Protocol": "6", "RuleAction": "allow", "Egress": false, "CidrBlock": "10.20.0.0/16",
                             "PortRange": {"From": 443, "To": 443}},
                            {"RuleNumber": 110, "Protocol": "6", "RuleAction": "allow", "Egress": false, "CidrBlock": "10.20.0.0/16",
                             "PortRange": {"From": 5432, "To": 5432}},
                            {"RuleNumber": 120, "Protocol": "6", "RuleAction": "allow", "Egress": false, "CidrBlock": "10.20.0.0/16",
                             "PortRange": {"From": 1024, "To": 65535}},
                            {"RuleNumber": 100, "Protocol": "6", "RuleAction": "allow", "Egress": true, "CidrBlock": "10.20.0.0/16",
                             "PortRange": {"From": 0, "To": 65535}}]}],
        "SecurityGroups": [
            group(SG_DEFAULT, "default", vec![], vec![]),
            group(SG_WEB, "web", vec![rule("tcp", Some(443), "10.20.0.0/16", Some("https from the VPC"))],
                  vec![group_rule(5432, pair(SG_DB, "to the database"))]),
            group(SG_DB, "db", vec![group_rule(5432, pair(SG_WEB, "from the web tier"))], vec![]),
        ],
        "NetworkInterfaces": [
            eni(ENI_1, SUBNET_1, "02:00:00:00:01:01", "10.20.1.10", &[SG_WEB]),
            eni(ENI_4, SUBNET_2, "02:00:00:00:01:04", "10.20.2.10", &[SG_DB]),
        ],
        "FlowLogs": [{"FlowLogId": "fl-0a000000000000001", "ResourceId": VPC, "TrafficType": "ALL",
                      "LogDestinationType": "cloud-watch-logs", "LogGroupName": "audit-test"}]
    })
}

fn findings_of(doc: &Value) -> Vec<Finding> {
    let cfg = Config::from_json(&doc.to_string()).expect("config parses");
    audit(&check(&cfg).expect("config is valid"))
}

/// Every check name `audit.rs` can report (the literals it files findings under), so a
/// new check fails this test until it is given an instance in `risky()`.
fn checks_in_source() -> BTreeSet<String> {
    let src = include_str!("../src/audit.rs");
    let mut out = BTreeSet::new();
    for marker in ["f(\n", "check: \""] {
        for (i, _) in src.match_indices(marker) {
            let rest = src[i + marker.len()..].trim_start().trim_start_matches('"');
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
            if name.contains('-') {
                out.insert(name);
            }
        }
    }
    out
}

fn assert_expected(found: &[(String, String, String)], context: &str) {
    let mut got: Vec<(String, String)> = found.iter().map(|(c, r, _)| (c.clone(), r.clone())).collect();
    got.sort();
    let mut want: Vec<(String, String)> = expected().iter().map(|e| (e.0.to_string(), e.2.to_string())).collect();
    want.sort();
    assert_eq!(got, want, "{context}: (check, resource) of every finding");
}

#[test]
fn every_check_is_reported_exactly_once_on_its_resource() {
    let findings = findings_of(&risky());
    let want = expected();
    let names: BTreeSet<String> = want.iter().map(|e| e.0.to_string()).collect();
    assert_eq!(names, checks_in_source(), "the test covers every check audit.rs has");
    for (check, severity, resource, rule) in &want {
        let hits: Vec<&Finding> = findings.iter().filter(|f| f.check == *check).collect();
        assert_eq!(hits.len(), 1, "{check} reported {} times: {hits:#?}", hits.len());
        let f = hits[0];
        assert_eq!(f.resource, *resource, "{check}");
        assert_eq!(f.severity, *severity, "{check}");
        assert!(f.rule.contains(rule), "{check}: rule {:?} should contain {rule:?}", f.rule);
        if f.rule.contains(" from ") || f.rule.contains(" to ") {
            assert!(f.rule.starts_with("sgr-"), "{check}: an SG rule is named by its id: {:?}", f.rule);
        }
        assert!(!f.message.is_empty() && !f.fix.is_empty(), "{check}: message and fix");
    }
    assert_eq!(findings.len(), want.len(), "no other finding: {findings:#?}");
    // Most severe first.
    assert!(findings.windows(2).all(|w| w[0].severity >= w[1].severity));
}

#[test]
fn a_clean_config_reports_nothing() {
    let findings = findings_of(&clean());
    assert!(findings.is_empty(), "{findings:#?}");
    // ... and each risky piece added alone is found (the clean config is not blind).
    let mut with_ssh = clean();
    with_ssh["SecurityGroups"][1]["IpPermissions"].as_array_mut().unwrap().push(rule(
        "tcp",
        Some(22),
        "0.0.0.0/0",
        Some("ssh"),
    ));
    let f = findings_of(&with_ssh);
    assert_eq!(f.iter().map(|f| f.check.as_str()).collect::<Vec<_>>(), ["open-admin-port"]);
    let mut flowless = clean();
    flowless["FlowLogs"] = json!([]);
    assert_eq!(findings_of(&flowless).iter().filter(|f| f.check == "eni-without-flow-log").count(), 2);
}

// ---------------------------------------------------------------------------------
// Stale references (validation accepts them only when the pair is cross-VPC/account)

fn with_pair(pair: Value) -> Value {
    let mut doc = risky();
    doc["SecurityGroups"][4]["IpPermissions"][1]["UserIdGroupPairs"] = json!([pair]);
    doc
}

fn check_doc(doc: &Value) -> Result<mgmt::validate::Checked, mgmt::error::Ec2Error> {
    check(&Config::from_json(&doc.to_string()).unwrap())
}

#[test]
fn a_reference_to_an_unknown_group_is_kept_only_when_it_names_another_vpc_or_account() {
    for (what, pair) in [
        ("VpcPeeringConnectionId", json!({"GroupId": SG_GONE, "VpcPeeringConnectionId": "pcx-0c000000000000001"})),
        ("PeeringStatus", json!({"GroupId": SG_GONE, "PeeringStatus": "deleted"})),
        ("another VpcId", json!({"GroupId": SG_GONE, "VpcId": "vpc-0b000000000000001"})),
        ("another UserId", json!({"GroupId": SG_GONE, "UserId": "444455556666"})),
    ] {
        let c = check_doc(&with_pair(pair)).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let stale: Vec<_> = audit(&c).into_iter().filter(|f| f.check == "stale-group-reference").collect();
        assert_eq!(stale.len(), 1, "{what}");
        assert_eq!(stale[0].resource, SG_APP, "{what}");
    }
    for (what, pair) in [
        ("no marker", json!({"GroupId": SG_GONE})),
        ("its own VPC", json!({"GroupId": SG_GONE, "VpcId": VPC})),
        ("its own account", json!({"GroupId": SG_GONE, "UserId": OWNER, "VpcId": VPC})),
        ("null markers", json!({"GroupId": SG_GONE, "PeeringStatus": null, "VpcPeeringConnectionId": null})),
    ] {
        let e = check_doc(&with_pair(pair)).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(e.code, "InvalidGroup.NotFound", "{what}: {e}");
        assert!(e.to_string().contains("SecurityGroups[4].IpPermissions[1].UserIdGroupPairs[0]"), "{what}: {e}");
    }
    // The owner comes from the VPC when the group does not say.
    let mut doc = with_pair(json!({"GroupId": SG_GONE, "UserId": OWNER}));
    doc["SecurityGroups"][4].as_object_mut().unwrap().remove("OwnerId");
    assert_eq!(check_doc(&doc).err().map(|e| e.code), Some("InvalidGroup.NotFound".into()));
    // Authorizing (one permission, no document) never takes an unknown group, marked or not.
    let mut perm: mgmt::model::IpPermission = serde_json::from_value(group_rule(5432, stale_pair())).unwrap();
    let e = mgmt::validate::permission_rules(&mut perm, false, &Default::default(), "IpPermissions[0]").unwrap_err();
    assert_eq!(e.code, "InvalidGroup.NotFound");
}

#[test]
fn a_stale_reference_matches_nothing() {
    let now = 1_795_305_600_000_000_000;
    let reach = |doc: &Value| {
        let c = check_doc(doc).unwrap();
        let t = mgmt::compile::compile_once(&c);
        let req = mgmt::trace::TraceRequest {
            from: Some(ENI_1.into()),
            to: Some(ENI_3.into()),
            protocol: Some("tcp".into()),
            dport: Some(5432),
            ..Default::default()
        };
        let legs = mgmt::trace::trace_offline(&t, &req, now).unwrap();
        (legs[0].verdict.clone(), legs[0].reason.clone())
    };
    assert_eq!(reach(&risky()), ("reject".to_string(), Some("sg-ingress".to_string())));
    // The same rule pointing at ENI 1's group lets it through: the peer is what failed.
    assert_eq!(reach(&with_pair(json!({"GroupId": SG_OPEN}))).0, "forward");
}

// ---------------------------------------------------------------------------------
// The CLI

fn write(dir: &Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

/// `vpcgate audit ARGS` (the socket is a path nobody listens on unless given).
fn audit_cli(socket: &Path, args: &[&str]) -> Out {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    run_cli(socket, &all, None)
}

fn from_json_output(out: &Out) -> Vec<(String, String, String)> {
    assert_eq!(out.status, 0, "{out:?}");
    let v = out.json();
    v["Findings"]
        .as_array()
        .expect("Findings")
        .iter()
        .map(|f| {
            assert!(Severity::parse(f["severity"].as_str().unwrap()).is_some(), "{f}");
            (
                f["check"].as_str().unwrap().to_string(),
                f["resource"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks a SARIF 2.1.0 log's structure; returns (ruleId, resource) of its results.
fn sarif_results(out: &Out, source: &str) -> Vec<(String, String, String)> {
    assert_eq!(out.status, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"), "{}", v["$schema"]);
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert!(driver["name"].as_str().is_some_and(|n| !n.is_empty()), "tool.driver.name");
    let rule_ids: BTreeSet<&str> =
        driver["rules"].as_array().expect("driver.rules").iter().map(|r| r["id"].as_str().expect("rule id")).collect();
    let mut out_rows = Vec::new();
    for r in runs[0]["results"].as_array().expect("runs[0].results") {
        let id = r["ruleId"].as_str().expect("ruleId");
        assert!(rule_ids.contains(id), "{id} is described in tool.driver.rules");
        assert!(["none", "note", "warning", "error"].contains(&r["level"].as_str().expect("level")), "{r}");
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()), "message.text: {r}");
        let locations = r["locations"].as_array().expect("locations");
        assert!(!locations.is_empty(), "{r}");
        assert_eq!(locations[0]["physicalLocation"]["artifactLocation"]["uri"], source, "{r}");
        let resource = locations[0]["logicalLocations"][0]["name"].as_str().expect("logicalLocations[0].name");
        let rule = r["properties"]["rule"].as_str().unwrap_or_default();
        out_rows.push((id.to_string(), resource.to_string(), rule.to_string()));
    }
    // Every rule the driver lists is used by a result.
    let used: BTreeSet<&str> = out_rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(used, rule_ids);
    out_rows
}

#[test]
fn cli_audits_a_config_file_in_every_format() {
    let dir = temp_dir("audit-cli");
    let nobody = dir.join("no.sock");
    let risky_path = write(&dir, "risky.json", &risky());
    let clean_path = write(&dir, "clean.json", &clean());

    let json_rows = from_json_output(&audit_cli(&nobody, &["--config", &risky_path, "--format", "json"]));
    assert_expected(&json_rows, "--format json");
    let offline: Vec<(String, String, String)> =
        findings_of(&risky()).into_iter().map(|f| (f.check, f.resource, f.rule)).collect();
    assert_eq!(json_rows, offline, "the CLI reports what the library finds, in the same order");

    let sarif = sarif_results(&audit_cli(&nobody, &["--config", &risky_path, "--format", "sarif"]), &risky_path);
    assert_eq!(sarif, json_rows, "SARIF carries the same findings");
    let levels = audit_cli(&nobody, &["--config", &risky_path, "--format", "sarif"]).json();
    let level_of = |check: &str| {
        levels["runs"][0]["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == check).unwrap()["level"].clone()
    };
    assert_eq!(level_of("open-all-ports"), "error");
    assert_eq!(level_of("shadowed-nacl-entry"), "warning");
    assert_eq!(level_of("unused-sg"), "note");

    let table = audit_cli(&nobody, &["--config", &risky_path, "--format", "table"]);
    assert_eq!(table.status, 0, "{table:?}");
    assert!(table.stdout.starts_with("SEVERITY"), "{}", table.stdout);
    for (check, severity, resource, _) in expected() {
        assert!(
            table.stdout.lines().any(|l| l.starts_with(severity.name()) && l.contains(check) && l.contains(resource)),
            "table row for {check} on {resource}:\n{}",
            table.stdout
        );
    }
    assert!(table.stdout.contains(&format!("\n{} finding(s)\n", expected().len())), "{}", table.stdout);
    assert_eq!(table.stdout.matches("fix:").count(), expected().len());
    // The table is the default.
    assert_eq!(audit_cli(&nobody, &["--config", &risky_path]).stdout, table.stdout);

    let clean_table = audit_cli(&nobody, &["--config", &clean_path]);
    assert_eq!((clean_table.status, clean_table.stdout.as_str()), (0, "no findings\n"));
    assert!(from_json_output(&audit_cli(&nobody, &["--config", &clean_path, "--format", "json"])).is_empty());
    let clean_sarif = audit_cli(&nobody, &["--config", &clean_path, "--format", "sarif"]).json();
    assert_eq!(clean_sarif["runs"][0]["results"], json!([]));

    // An invalid config is the EC2 error, as a service error.
    let mut bad = risky();
    bad["SecurityGroups"][4]["IpPermissions"][1]["UserIdGroupPairs"] = json!([{"GroupId": SG_GONE}]);
    let bad_path = write(&dir, "bad.json", &bad);
    let out = audit_cli(&nobody, &["--config", &bad_path]);
    assert_eq!((out.status, out.code().as_deref()), (254, Some("InvalidGroup.NotFound")), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = temp_dir("audit-fail-on");
    let nobody = dir.join("no.sock");
    let risky_path = write(&dir, "risky.json", &risky());
    let clean_path = write(&dir, "clean.json", &clean());
    // Only a medium finding: the default group carries a rule.
    let mut medium = clean();
    medium["SecurityGroups"][0]["IpPermissions"] = json!([rule("tcp", Some(443), "10.20.0.0/16", None)]);
    let medium_path = write(&dir, "medium.json", &medium);
    assert_eq!(
        findings_of(&medium).iter().map(|f| (f.check.as_str(), f.severity)).collect::<Vec<_>>(),
        [("default-sg-has-rules", Severity::Medium)]
    );
    let status = |path: &str, level: Option<&str>, format: &str| {
        let mut args = vec!["--config", path, "--format", format];
        if let Some(l) = level {
            args.extend(["--fail-on", l]);
        }
        audit_cli(&nobody, &args).status
    };
    for format in ["table", "json", "sarif"] {
        assert_eq!(status(&risky_path, None, format), 0, "no --fail-on: report only");
        assert_eq!(status(&risky_path, Some("high"), format), 1);
        assert_eq!(status(&risky_path, Some("critical"), format), 1);
        assert_eq!(status(&risky_path, Some("CRITICAL"), format), 1, "case-insensitive");
        assert_eq!(status(&clean_path, Some("info"), format), 0);
        assert_eq!(status(&medium_path, Some("high"), format), 0);
        assert_eq!(status(&medium_path, Some("medium"), format), 1);
        assert_eq!(status(&medium_path, Some("low"), format), 1);
    }
    let out = audit_cli(&nobody, &["--config", &risky_path, "--fail-on", "severe"]);
    assert_eq!(out.status, 252, "an unknown severity is a usage error: {out:?}");
    assert!(out.stderr.contains("--fail-on takes"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_audits_describe_outputs() {
    let dir = temp_dir("audit-describe");
    let nobody = dir.join("no.sock");
    let doc = risky();
    // One file per describe call, the groups paginated over two files.
    let groups = doc["SecurityGroups"].as_array().unwrap();
    let files = [
        write(&dir, "describe-vpcs.json", &json!({"Vpcs": doc["Vpcs"], "ResponseMetadata": {"RequestId": "x"}})),
        write(&dir, "describe-subnets.json", &json!({"Subnets": doc["Subnets"]})),
        write(&dir, "describe-network-acls.json", &json!({"NetworkAcls": doc["NetworkAcls"]})),
        write(&dir, "describe-security-groups-1.json", &json!({"SecurityGroups": groups[..4], "NextToken": "t"})),
        write(&dir, "describe-security-groups-2.json", &json!({"SecurityGroups": groups[4..]})),
        write(&dir, "describe-network-interfaces.json", &json!({"NetworkInterfaces": doc["NetworkInterfaces"]})),
        write(&dir, "describe-flow-logs.json", &json!({"FlowLogs": doc["FlowLogs"]})),
        write(&dir, "appliance.json", &json!({"Appliance": doc["Appliance"]})),
    ];
    let mut args = vec!["--describe"];
    args.extend(files.iter().map(String::as_str));
    let mut json_args = args.clone();
    json_args.extend(["--format", "json"]);
    let rows = from_json_output(&audit_cli(&nobody, &json_args));
    assert_expected(&rows, "--describe");
    let mut sarif_args = args.clone();
    sarif_args.extend(["--format", "sarif"]);
    assert_eq!(sarif_results(&audit_cli(&nobody, &sarif_args), &files[0]), rows);
    let mut fail_args = args.clone();
    fail_args.extend(["--fail-on", "high"]);
    assert_eq!(audit_cli(&nobody, &fail_args).status, 1);
    // --config and --describe exclude each other.
    let out = audit_cli(&nobody, &["--config", &files[0], "--describe", &files[1]]);
    assert_eq!(out.status, 252, "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_audit_of_the_running_daemon() {
    let mut d = Daemon::start_named("audit-live", &risky());
    // The saved config (stale pair and its markers included) is valid at the next start.
    d.restart();
    let rows = from_json_output(&d.cli(&["audit", "--format", "json"]));
    assert_expected(&rows, "live");
    let offline: Vec<(String, String, String)> =
        findings_of(&risky()).into_iter().map(|f| (f.check, f.resource, f.rule)).collect();
    assert_eq!(rows, offline, "the daemon audits the config it runs");
    assert_eq!(sarif_results(&d.cli(&["audit", "--format", "sarif"]), "vpcgated"), rows);
    let table = d.cli(&["audit"]);
    assert!(table.stdout.contains(&format!("{} finding(s)", expected().len())), "{}", table.stdout);
    assert_eq!(d.cli(&["audit", "--fail-on", "high"]).status, 1);

    // The fix the stale finding proposes works: revoke the rule by its id.
    let stale = rows.iter().find(|r| r.0 == "stale-group-reference").unwrap();
    let rule_id = stale.2.split_whitespace().next().unwrap().to_string();
    assert!(rule_id.starts_with("sgr-"), "{stale:?}");
    d.ok(&["revoke-security-group-ingress", "--group-id", SG_APP, "--security-group-rule-ids", &rule_id]);
    let after = from_json_output(&d.cli(&["audit", "--format", "json"]));
    assert!(!after.iter().any(|r| r.0 == "stale-group-reference"), "{after:?}");
    assert_eq!(after.len(), rows.len() - 1, "{after:?}");

    // The daemon gone: exit 255, as for every verb.
    drop(d);
}

#[test]
fn live_audit_without_a_daemon_is_a_connection_error() {
    let dir = temp_dir("audit-nodaemon");
    let out = audit_cli(&dir.join("no.sock"), &[]);
    assert_eq!(out.status, 255, "{out:?}");
    assert!(out.stderr.contains("Could not connect"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
