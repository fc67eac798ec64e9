//! Who may do what (SO_PEERCRED): root may change the config; a member of
//! `Appliance.Api.ReadOnlyGroup` may describe and export but every write verb is
//! refused with UnauthorizedOperation; any other uid cannot even open the socket
//! (0660), and if the socket is opened up it is refused every verb by the daemon.
//! Runs the real CLI as uid 65534 with `setpriv`; needs root (CI runs as root).

#[path = "support/daemon.rs"]
mod daemon;

use std::process::Command;

use daemon::*;
use serde_json::json;

const NOBODY: u32 = 65534;
/// `nogroup` on Debian: the read-only group of this test's config.
const NOGROUP: u32 = 65534;
/// A group that is neither the admin nor the read-only group.
const OTHER_GROUP: u32 = 65533;

fn as_user(bin: &std::path::Path, socket: &std::path::Path, gid: u32, args: &[String]) -> Out {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(bin)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("setpriv runs");
    Out {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn non_admin_uids_are_refused_every_write_verb() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the permission tests run the CLI as another uid and need root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let nogroup_exists =
        std::fs::read_to_string("/etc/group").unwrap_or_default().lines().any(|l| l.starts_with("nogroup:x:65534:"));
    if !nogroup_exists {
        eprintln!("skipped: no group nogroup (gid 65534) on this machine");
        return;
    }
    let mut config = fixture();
    config["Appliance"]["Api"] = json!({"ReadOnlyGroup": "nogroup"});
    let d = Daemon::start_named("perm", &config);
    // The CLI, where uid 65534 can run it.
    let bin = d.dir.join("vpcgate");
    std::fs::copy(vpcgate(), &bin).unwrap();

    // Resources the write verbs act on, made by root.
    let spare_acl =
        d.ok(&["create-network-acl", "--vpc-id", VPC])["NetworkAcl"]["NetworkAclId"].as_str().unwrap().to_string();
    let flow_log = d.ok(&[
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        VPC,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "g",
    ])["FlowLogIds"][0]
        .as_str()
        .unwrap()
        .to_string();
    let rule = d.ok(&["describe-security-group-rules", "--filters", &format!("Name=group-id,Values={SG_WEB}")])
        ["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();
    let export_file = d.dir.join("export.json");
    std::fs::write(&export_file, serde_json::to_string(&d.export()).unwrap()).unwrap();
    let export_file = export_file.to_str().unwrap().to_string();

    let writes: Vec<Vec<String>> = vec![
        strings(&["create-security-group", "--group-name", "p", "--description", "p", "--vpc-id", VPC]),
        strings(&["delete-security-group", "--group-id", SG_SPARE]),
        strings(&["authorize-security-group-ingress", "--group-id", SG_SPARE, "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8"]),
        strings(&["authorize-security-group-egress", "--group-id", SG_SPARE, "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8"]),
        strings(&["revoke-security-group-ingress", "--group-id", SG_WEB, "--protocol", "tcp", "--port", "80", "--cidr", "0.0.0.0/0"]),
        strings(&["revoke-security-group-egress", "--group-id", SG_WEB, "--protocol", "all", "--cidr", "0.0.0.0/0"]),
        strings(&[
            "modify-security-group-rules",
            "--group-id",
            SG_WEB,
            "--security-group-rules",
            &format!("SecurityGroupRuleId={rule},SecurityGroupRule={{IpProtocol=tcp,FromPort=81,ToPort=81,CidrIpv4=0.0.0.0/0}}"),
        ]),
        strings(&["create-network-acl", "--vpc-id", VPC]),
        strings(&["delete-network-acl", "--network-acl-id", &spare_acl]),
        strings(&["create-network-acl-entry", "--network-acl-id", NACL_1, "--rule-number", "200", "--protocol", "-1", "--rule-action", "deny", "--cidr-block", "10.0.0.0/8", "--ingress"]),
        strings(&["replace-network-acl-entry", "--network-acl-id", NACL_1, "--rule-number", "100", "--protocol", "-1", "--rule-action", "deny", "--cidr-block", "0.0.0.0/0", "--ingress"]),
        strings(&["delete-network-acl-entry", "--network-acl-id", NACL_1, "--rule-number", "100", "--ingress"]),
        strings(&["replace-network-acl-association", "--association-id", "aclassoc-00000000000000001", "--network-acl-id", &spare_acl]),
        strings(&["modify-network-interface-attribute", "--network-interface-id", ENI_A, "--no-source-dest-check"]),
        strings(&["modify-network-interface-attribute", "--network-interface-id", ENI_A, "--groups", SG_WEB, SG_APP]),
        strings(&["create-flow-logs", "--resource-type", "Subnet", "--resource-ids", SUBNET_1, "--traffic-type", "REJECT", "--log-group-name", "g"]),
        strings(&["delete-flow-logs", "--flow-log-ids", &flow_log]),
        strings(&["import", &export_file]),
    ];
    let reads: Vec<Vec<String>> = vec![
        strings(&["describe-security-groups"]),
        strings(&["describe-security-group-rules"]),
        strings(&["describe-network-acls"]),
        strings(&["describe-network-interfaces"]),
        strings(&["describe-subnets"]),
        strings(&["describe-vpcs"]),
        strings(&["describe-flow-logs"]),
        strings(&["export"]),
    ];

    // Each write verb is valid: root's dry run of it would succeed.
    for w in &writes {
        let mut args: Vec<&str> = w.iter().map(String::as_str).collect();
        args.push("--dry-run");
        let out = d.cli(&args);
        let valid = out.code().as_deref() == Some("DryRunOperation") || (w[0] == "import" && out.status == 0);
        assert!(valid, "root's dry run of {w:?}: {out:?}");
    }
    let before = d.export();

    // The read-only group: describes work, writes are refused.
    for r in &reads {
        let out = as_user(&bin, &d.socket, NOGROUP, r);
        assert_eq!(out.status, 0, "read-only member, {r:?}: {out:?}");
    }
    assert_eq!(as_user(&bin, &d.socket, NOGROUP, &strings(&["export"])).json(), before);
    for w in &writes {
        let out = as_user(&bin, &d.socket, NOGROUP, w);
        assert_eq!(
            (out.status, out.code().as_deref()),
            (254, Some("UnauthorizedOperation")),
            "read-only member, {w:?}: {out:?}"
        );
        let mut dry = w.clone();
        dry.push("--dry-run".into());
        let out = as_user(&bin, &d.socket, NOGROUP, &dry);
        assert_eq!(out.code().as_deref(), Some("UnauthorizedOperation"), "read-only member, {dry:?}: {out:?}");
    }

    // Any other uid: the socket (0660, root:nogroup) does not open.
    let out = as_user(&bin, &d.socket, OTHER_GROUP, &reads[0]);
    assert_eq!(out.status, 255, "{out:?}");
    // Opened up by mistake, the daemon still refuses every verb, reads included.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for v in writes.iter().chain(&reads) {
        let out = as_user(&bin, &d.socket, OTHER_GROUP, v);
        assert_eq!(
            (out.status, out.code().as_deref()),
            (254, Some("UnauthorizedOperation")),
            "uid {NOBODY}, {v:?}: {out:?}"
        );
    }
    assert_eq!(d.export(), before, "nothing changed");
}
