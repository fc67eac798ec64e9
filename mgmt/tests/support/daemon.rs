//! Runs the real `vpcgated --no-dataplane` in a temporary directory and drives it
//! through the real `vpcgate` CLI (or raw socket requests), for the API tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const VPC: &str = "vpc-00000000000000001";
pub const SUBNET_1: &str = "subnet-00000000000000001";
pub const SUBNET_2: &str = "subnet-00000000000000002";
pub const NACL_1: &str = "acl-00000000000000001";
/// "web": on ENI a; ingress tcp 80 from 0.0.0.0/0 and tcp 443 from 100.68.0.0/18.
pub const SG_WEB: &str = "sg-0000000000000000a";
/// "db": on ENI b; ingress tcp 5432 from the app group.
pub const SG_DB: &str = "sg-0000000000000000b";
/// "app": on no ENI, referenced by db.
pub const SG_APP: &str = "sg-0000000000000000c";
/// "spare": on no ENI, referenced by nobody.
pub const SG_SPARE: &str = "sg-0000000000000000d";
/// In subnet 1, attached to an instance.
pub const ENI_A: &str = "eni-0000000000000000a";
/// In subnet 2, not attached.
pub const ENI_B: &str = "eni-0000000000000000b";

/// A small VPC for API tests (IPv4 and IPv6, two subnets, four groups, two ENIs).
pub fn fixture() -> Value {
    let group = |id: &str, name: &str, ingress: Value| {
        json!({"GroupId": id, "GroupName": name, "Description": format!("{name} tier"), "VpcId": VPC,
               "OwnerId": "111122223333", "IpPermissions": ingress,
               "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    };
    json!({
        "Vpcs": [{"VpcId": VPC, "CidrBlock": "198.18.0.0/16", "OwnerId": "111122223333", "IsDefault": false,
                  "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2600:1f18:aaaa::/56"}],
                  "Tags": [{"Key": "Name", "Value": "api-test"}]}],
        "Subnets": [
            {"SubnetId": SUBNET_1, "VpcId": VPC, "CidrBlock": "198.18.1.0/24", "AvailabilityZone": "us-east-1a",
             "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2600:1f18:aaaa:1::/64"}]},
            {"SubnetId": SUBNET_2, "VpcId": VPC, "CidrBlock": "198.18.2.0/24", "AvailabilityZone": "us-east-1b"}
        ],
        "NetworkAcls": [{"NetworkAclId": NACL_1, "VpcId": VPC, "IsDefault": false,
                         "Associations": [{"NetworkAclAssociationId": "aclassoc-00000000000000001", "SubnetId": SUBNET_1}],
                         "Entries": [
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0"},
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": true, "CidrBlock": "0.0.0.0/0"}]}],
        "SecurityGroups": [
            group(SG_WEB, "web", json!([
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "100.68.0.0/18"}]}])),
            group(SG_DB, "db", json!([
                {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": SG_APP}]}])),
            group(SG_APP, "app", json!([])),
            group(SG_SPARE, "spare", json!([]))
        ],
        "NetworkInterfaces": [
            {"NetworkInterfaceId": ENI_A, "SubnetId": SUBNET_1, "MacAddress": "02:00:00:00:00:0a",
             "PrivateIpAddress": "198.18.1.10", "Ipv6Addresses": [{"Ipv6Address": "2600:1f18:aaaa:1::10"}],
             "Groups": [{"GroupId": SG_WEB}], "Attachment": {"InstanceId": "i-0000000000000000a"}},
            {"NetworkInterfaceId": ENI_B, "SubnetId": SUBNET_2, "MacAddress": "02:00:00:00:00:0b",
             "PrivateIpAddress": "198.18.2.20", "Groups": [{"GroupId": SG_DB}]}
        ],
        "Appliance": {"RouterMac": "02:76:70:63:67:01"}
    })
}

pub fn vpcgated() -> &'static str {
    env!("CARGO_BIN_EXE_vpcgated")
}

pub fn vpcgate() -> &'static str {
    env!("CARGO_BIN_EXE_vpcgate")
}

/// A fresh temporary directory (mode 0755, so other uids can reach the socket).
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vpcgate-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// What one CLI run printed.
#[derive(Debug)]
pub struct Out {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The EC2 error code in `An error occurred (Code) when calling ...`.
    pub fn code(&self) -> Option<String> {
        let rest = self.stderr.split("An error occurred (").nth(1)?;
        Some(rest.split(')').next()?.to_string())
    }

    pub fn json(&self) -> Value {
        if self.stdout.trim().is_empty() {
            return json!({});
        }
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    pub fn start(config: &Value) -> Daemon {
        Daemon::start_named("api", config)
    }

    pub fn start_named(name: &str, config: &Value) -> Daemon {
        let dir = temp_dir(name);
        let config_path = dir.join("initial.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let mut d =
            Daemon { child: None, socket: dir.join("api.sock"), state: dir.join("state"), config: config_path, dir };
        d.spawn();
        d.wait_ready();
        d
    }

    /// Starts vpcgated (the saved config wins over the initial one, as in production).
    pub fn spawn(&mut self) {
        let child = Command::new(vpcgated())
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--no-dataplane")
            .env("VPCGATE_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vpcgated starts");
        self.child = Some(child);
    }

    /// Waits until the socket answers (panics after 20 s or if the daemon exits).
    pub fn wait_ready(&mut self) {
        let t0 = Instant::now();
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("vpcgated exited during start: {status}");
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "vpcgated did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `signal` to the daemon and waits for it to exit.
    pub fn signal(&mut self, signal: i32) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped,
            // so the pid cannot have been reused.
            unsafe {
                libc::kill(c.id() as i32, signal);
            }
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready();
    }

    /// Runs `vpcgate ARGS --socket SOCKET`.
    pub fn cli(&self, args: &[&str]) -> Out {
        run_cli(&self.socket, args, None)
    }

    /// Runs the CLI as another user (`setpriv` with the given uid, gid, no other groups).
    pub fn cli_as(&self, uid: u32, gid: u32, args: &[&str]) -> Out {
        run_cli(&self.socket, args, Some((uid, gid)))
    }

    /// Runs a verb that must succeed; its JSON answer.
    pub fn ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert_eq!(out.status, 0, "vpcgate {args:?} failed: {}", out.stderr);
        out.json()
    }

    /// Runs a verb that must fail with a service error (exit 254); its EC2 code.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(out.status, 254, "vpcgate {args:?}: expected a service error, got {out:?}");
        out.code().unwrap_or_else(|| panic!("no error code in {:?}", out.stderr))
    }

    /// The running config, as `vpcgate export` prints it.
    pub fn export(&self) -> Value {
        self.ok(&["export"])
    }

    /// One raw request line on the socket; the response.
    pub fn request(&self, req: &Value) -> Value {
        request(&self.socket, req).expect("daemon answers")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run_cli(socket: &Path, args: &[&str], user: Option<(u32, u32)>) -> Out {
    let mut cmd = match user {
        None => Command::new(vpcgate()),
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(vpcgate());
            c
        }
    };
    let out = cmd.args(args).arg("--socket").arg(socket).env_remove("VPCGATE_SOCKET").output().expect("vpcgate runs");
    Out {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One request line, one response line; `None` if the daemon went away.
pub fn request(socket: &Path, req: &Value) -> Option<Value> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(format!("{req}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

/// The rules of a group as comparable strings (`in tcp 22-22 203.0.113.0/24`).
pub fn rules_of(export: &Value, group: &str) -> Vec<String> {
    let g = export["SecurityGroups"].as_array().unwrap().iter().find(|g| g["GroupId"] == group).expect("group");
    let mut out = Vec::new();
    for (dir, key) in [("in", "IpPermissions"), ("out", "IpPermissionsEgress")] {
        for p in g[key].as_array().unwrap() {
            let ports = format!("{}-{}", p["FromPort"], p["ToPort"]);
            let proto = p["IpProtocol"].as_str().unwrap();
            for r in p["IpRanges"].as_array().unwrap() {
                out.push(format!("{dir} {proto} {ports} {}", r["CidrIp"].as_str().unwrap()));
            }
            for r in p["Ipv6Ranges"].as_array().unwrap() {
                out.push(format!("{dir} {proto} {ports} {}", r["CidrIpv6"].as_str().unwrap()));
            }
            for r in p["UserIdGroupPairs"].as_array().unwrap() {
                out.push(format!("{dir} {proto} {ports} {}", r["GroupId"].as_str().unwrap()));
            }
        }
    }
    out.sort();
    out
}
