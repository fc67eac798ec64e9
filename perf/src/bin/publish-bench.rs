//! Publish latency of a real `vpcgated`: how long an acknowledged rule change takes to
//! reach every worker, with 1,000 rules per ENI.
//!
//! Each run makes the two-host topology of scripts/netns/topo.sh (namespaces
//! `vgx-pb<pid>-*`, addresses in 198.18.0.0/15), starts `vpcgated` on AF_XDP in the
//! switch namespace with `--workers` workers and a config of `--enis` ENIs, each in 5
//! groups of 100 ingress + 100 egress rules (1,000 rules per ENI), then sends
//! `--changes` changes one after the other over the Unix socket (authorize and revoke
//! of an ingress rule on one ENI's group, replace of a NACL entry of its subnet) and
//! reads the daemon's own measurement from `DescribeStats`:
//!
//! - `Publish.DurableToWorkersNanos`: from the moment the change is saved (fsynced;
//!   it may be acknowledged from then on, and the answer is written after the
//!   snapshot is stored) until the last worker picks the new tables up between
//!   batches;
//! - `Publish.CompileNanos`: the compile step inside it;
//!
//! and, measured here, the round trip of each request (validate, save, compile,
//! publish, answer). `--ping` keeps a flood ping through the switch during the run, so
//! workers are busy rather than asleep in poll(2). The table is the median over runs.
//!
//! Root only. Example: `publish-bench --runs 5 --changes 2000`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Publish latency of a real vpcgated: acknowledged change -> every worker on the new tables")]
struct Args {
    /// Runs (a fresh daemon each); the table shows the median.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Changes per run, sent one after the other.
    #[arg(long, default_value_t = 2000)]
    changes: usize,
    /// ENIs in the config, each with 1,000 rules.
    #[arg(long, default_value_t = 8)]
    enis: usize,
    /// Workers (the veths get as many queues).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Connections sending changes at once (each one after the other on its own):
    /// with more than one, the daemon saves several clients' changes at once.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Flood ping from h1 to h2 during the run (busy workers).
    #[arg(long)]
    ping: bool,
    /// The daemon binary (default: vpcgated next to this program).
    #[arg(long)]
    vpcgated: Option<PathBuf>,
    /// Print each run's figures as JSON too.
    #[arg(long)]
    json: bool,
}

const VPC: &str = "vpc-0b0b0000000000001";
const SUBNET_1: &str = "subnet-0b0b0000000000001";
const SUBNET_2: &str = "subnet-0b0b0000000000002";
const NACL: &str = "acl-0b0b0000000000001";
const GROUPS_PER_ENI: usize = 5;
const RULES_PER_DIRECTION: usize = 100;

fn group_id(eni: usize, k: usize) -> String {
    format!("sg-0{:016x}", eni * 16 + k + 1)
}

fn eni_id(eni: usize) -> String {
    format!("eni-0{:016x}", eni + 1)
}

/// `enis` ENIs with 1,000 rules each: ENI 0 is h1 (198.18.1.10 on port a), ENI 1 is h2
/// (198.18.2.10 on port b), the others sit behind port a with made-up addresses.
fn config(enis: usize, workers: usize, socket: &Path, mac_h1: &str, mac_h2: &str, prefix: &str) -> Value {
    let mut groups = Vec::new();
    let mut nis = Vec::new();
    for e in 0..enis {
        let mut ids = Vec::new();
        for k in 0..GROUPS_PER_ENI {
            let ingress: Vec<Value> = (0..RULES_PER_DIRECTION)
                .map(|i| {
                    json!({"IpProtocol": "tcp", "FromPort": 1000 + i, "ToPort": 1000 + i,
                                "IpRanges": [{"CidrIp": format!("10.{e}.{k}.{i}/32")}]})
                })
                .collect();
            let mut egress: Vec<Value> = (0..RULES_PER_DIRECTION - 1)
                .map(|i| {
                    json!({"IpProtocol": "udp", "FromPort": 2000 + i, "ToPort": 2000 + i,
                                "IpRanges": [{"CidrIp": format!("10.{}.{k}.{i}/32", e + 100)}]})
                })
                .collect();
            // Room for the benchmark's own traffic: ICMP within the VPC both ways.
            egress.push(
                json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "198.18.0.0/16"}]}),
            );
            let mut ingress = ingress;
            ingress[RULES_PER_DIRECTION - 1] =
                json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "198.18.0.0/16"}]});
            groups.push(json!({"GroupId": group_id(e, k), "GroupName": format!("g{e}-{k}"), "Description": "bench",
                               "VpcId": VPC, "IpPermissions": ingress, "IpPermissionsEgress": egress}));
            ids.push(json!({"GroupId": group_id(e, k)}));
        }
        let (subnet, mac, ip) = match e {
            0 => (SUBNET_1, mac_h1.to_string(), "198.18.1.10".to_string()),
            1 => (SUBNET_2, mac_h2.to_string(), "198.18.2.10".to_string()),
            _ => (SUBNET_1, format!("02:00:00:00:0b:{:02x}", e), format!("198.18.1.{}", 20 + e)),
        };
        nis.push(json!({"NetworkInterfaceId": eni_id(e), "SubnetId": subnet, "MacAddress": mac,
                        "PrivateIpAddress": ip, "Groups": ids}));
    }
    let port_a: Vec<String> = (0..enis).filter(|&e| e != 1).map(eni_id).collect();
    let entry = |n: i64, egress: bool| json!({"RuleNumber": n, "Protocol": "-1", "RuleAction": "allow", "Egress": egress, "CidrBlock": "0.0.0.0/0"});
    json!({
        "Vpcs": [{"VpcId": VPC, "CidrBlock": "198.18.0.0/16"}],
        "Subnets": [{"SubnetId": SUBNET_1, "VpcId": VPC, "CidrBlock": "198.18.1.0/24"},
                    {"SubnetId": SUBNET_2, "VpcId": VPC, "CidrBlock": "198.18.2.0/24"}],
        "NetworkAcls": [{"NetworkAclId": NACL, "VpcId": VPC, "IsDefault": false,
                         "Associations": [{"NetworkAclAssociationId": "aclassoc-0b0b0000000000001", "SubnetId": SUBNET_1},
                                          {"NetworkAclAssociationId": "aclassoc-0b0b0000000000002", "SubnetId": SUBNET_2}],
                         "Entries": [entry(100, false), entry(100, true)]}],
        "SecurityGroups": groups,
        "NetworkInterfaces": nis,
        "Appliance": {
            "RouterMac": "02:76:70:63:67:01",
            "Quotas": {"RulesPerSecurityGroup": 1000},
            "Api": {"Socket": socket},
            "Workers": {"Count": workers},
            "Ports": [{"Name": "a", "Interface": format!("{prefix}sa"), "NetworkInterfaceIds": port_a},
                      {"Name": "b", "Interface": format!("{prefix}sb"), "NetworkInterfaceIds": [eni_id(1)]}]
        }
    })
}

/// Client `k`'s i-th change: an authorize, the revoke of the same rule, a NACL
/// replace (alternating between two allow entries that differ only in their CIDR).
fn change(k: usize, i: usize) -> Value {
    let port = 10000 + k * 100 + (i / 3) % 100;
    let rule = json!([{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                       "IpRanges": [{"CidrIp": "10.200.0.0/16"}]}]);
    match i % 3 {
        0 => json!({"Action": "AuthorizeSecurityGroupIngress", "GroupId": group_id(0, 0), "IpPermissions": rule}),
        1 => json!({"Action": "RevokeSecurityGroupIngress", "GroupId": group_id(0, 0), "IpPermissions": rule}),
        _ => json!({"Action": "ReplaceNetworkAclEntry", "NetworkAclId": NACL, "RuleNumber": 100, "Protocol": "-1",
                    "RuleAction": "allow", "Egress": false,
                    "CidrBlock": if (i / 3).is_multiple_of(2) { "128.0.0.0/1" } else { "0.0.0.0/0" }}),
    }
}

struct Topo {
    script: PathBuf,
    prefix: String,
}

impl Topo {
    fn up(script: PathBuf, prefix: &str, queues: usize) -> Result<Topo, String> {
        let out = Command::new(&script)
            .args(["up", "--prefix", prefix, "--queues", &queues.to_string()])
            .args(["--h1-addr", "198.18.1.10/24", "--h2-addr", "198.18.2.10/24"])
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("topo.sh up: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let topo = Topo { script, prefix: prefix.into() };
        for h in ["h1", "h2"] {
            // The hosts reach the other subnet through the switch (the VPC router).
            let ns = format!("{prefix}{h}");
            sh(&["ip", "-n", &ns, "route", "add", "198.18.0.0/16", "dev", &ns])?;
        }
        Ok(topo)
    }
    fn mac(&self, host: &str) -> Result<String, String> {
        let ns = format!("{}{host}", self.prefix);
        let out =
            Command::new("ip").args(["-n", &ns, "-j", "link", "show", &ns]).output().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -j link: {e}"))?;
        v[0]["address"].as_str().map(str::to_string).ok_or_else(|| format!("no MAC for {ns}"))
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).args(["down", "--prefix", &self.prefix]).output();
    }
}

fn sh(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().map_err(|e| format!("{}: {e}", cmd[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", cmd.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(socket: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(socket)?;
        Ok(Client { reader: BufReader::new(s.try_clone()?), writer: s })
    }
    fn call(&mut self, req: &Value) -> Result<Value, String> {
        writeln!(self.writer, "{req}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Durable -> all workers: p50, p99, max (µs); how many.
    publish: [f64; 3],
    published: u64,
    compile: [f64; 3],
    round_trip: [f64; 3],
    changes_per_sec: f64,
}

fn micros(q: &Value) -> [f64; 3] {
    let f = |k: &str| q[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
    [f("p50"), f("p99"), f("max")]
}

fn run_once(args: &Args, run: usize, vpcgated: &Path, script: &Path) -> Result<Figures, String> {
    let prefix = format!("vgx-pb{}{run}-", std::process::id() % 1000);
    let topo = Topo::up(script.to_path_buf(), &prefix, args.workers)?;
    let dir = std::env::temp_dir().join(format!("vpcgate-publish-bench-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let socket = dir.join("api.sock");
    let cfg = config(args.enis, args.workers, &socket, &topo.mac("h1")?, &topo.mac("h2")?, &prefix);
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("vpcgated.log")).map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}sw")])
        .arg(vpcgated)
        .arg("--config")
        .arg(&cfg_path)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--reset")
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", vpcgated.display()))?;
    let mut daemon = Daemon(child);
    let started = Instant::now();
    let client = loop {
        if let Ok(c) = Client::connect(&socket) {
            break c;
        }
        if let Ok(Some(status)) = daemon.0.try_wait() {
            let log = std::fs::read_to_string(dir.join("vpcgated.log")).unwrap_or_default();
            return Err(format!("vpcgated exited ({status}):\n{log}"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("vpcgated did not open its socket within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut ping = if args.ping {
        Some(
            Command::new("ip")
                .args(["netns", "exec", &format!("{prefix}h1"), "ping", "-f", "-q", "198.18.2.10"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("ping: {e}"))?,
        )
    } else {
        None
    };
    let began = Instant::now();
    let per_client = args.changes / args.clients;
    let results: Vec<Result<Histogram<u64>, String>> = std::thread::scope(|s| {
        let socket = &socket;
        let handles: Vec<_> = (0..args.clients)
            .map(|k| {
                s.spawn(move || -> Result<Histogram<u64>, String> {
                    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
                    let mut rtt = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
                    for i in 0..per_client {
                        let t = Instant::now();
                        let answer = client.call(&change(k, i))?;
                        let _ = rtt.record(t.elapsed().as_nanos() as u64);
                        if answer.get("Error").is_some() {
                            return Err(format!("client {k} change {i} refused: {answer}"));
                        }
                    }
                    Ok(rtt)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into()))).collect()
    });
    let changes_per_sec = (per_client * args.clients) as f64 / began.elapsed().as_secs_f64();
    let mut rtt = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    for r in results {
        rtt.add(r?).map_err(|e| e.to_string())?;
    }
    // The last change's pick-up is at most a poll timeout away.
    std::thread::sleep(Duration::from_millis(50));
    // A fresh connection: the daemon closes one idle for its I/O timeout (30 s).
    drop(client);
    let mut client = Client::connect(&socket).map_err(|e| e.to_string())?;
    let stats = client.call(&json!({"Action": "DescribeStats"}))?;
    if let Some(p) = ping.as_mut() {
        let _ = p.kill();
        let _ = p.wait();
    }
    let p = &stats["Publish"];
    let fig = Figures {
        publish: micros(&p["DurableToWorkersNanos"]),
        published: p["DurableToWorkersNanos"]["count"].as_u64().unwrap_or(0),
        compile: micros(&p["CompileNanos"]),
        round_trip: [
            rtt.value_at_quantile(0.5) as f64 / 1000.0,
            rtt.value_at_quantile(0.99) as f64 / 1000.0,
            rtt.max() as f64 / 1000.0,
        ],
        changes_per_sec,
    };
    if args.json {
        eprintln!("{}", json!({"run": run, "publish": p, "round_trip_us": fig.round_trip}));
    }
    drop(daemon);
    drop(topo);
    let _ = std::fs::remove_dir_all(&dir);
    if fig.published == 0 || (args.clients == 1 && fig.published < args.changes as u64) {
        return Err(format!(
            "the daemon measured {} publications for {} changes (every save must reach every worker)",
            fig.published, args.changes
        ));
    }
    Ok(fig)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("publish-bench: needs root (network namespaces, AF_XDP)");
        std::process::exit(2);
    }
    let vpcgated = args.vpcgated.clone().unwrap_or_else(|| {
        std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("vpcgated"))).unwrap_or_default()
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns/topo.sh");
    let mut runs = Vec::new();
    for run in 0..args.runs {
        match run_once(&args, run, &vpcgated, &script) {
            Ok(f) => {
                eprintln!(
                    "run {run}: durable->workers p50 {:.0} p99 {:.0} max {:.0} µs; compile p50 {:.0} p99 {:.0} µs; round trip p50 {:.0} p99 {:.0} µs; {:.0} changes/s ({} publications)",
                    f.publish[0], f.publish[1], f.publish[2], f.compile[0], f.compile[1], f.round_trip[0], f.round_trip[1], f.changes_per_sec, f.published
                );
                runs.push(f);
            }
            Err(e) => {
                eprintln!("publish-bench: run {run}: {e}");
                std::process::exit(1);
            }
        }
    }
    let med = |pick: fn(&Figures) -> f64| median(runs.iter().map(pick).collect());
    println!(
        "{} ENIs x 1,000 rules, {} workers, {} changes per run from {} client(s){}, median of {} runs (µs):\n",
        args.enis,
        args.workers,
        args.changes,
        args.clients,
        if args.ping { ", flood ping through the switch" } else { ", workers idle" },
        runs.len()
    );
    println!("| measure | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    println!(
        "| durable -> every worker on the new tables | {:.0} | {:.0} | {:.0} |",
        med(|f| f.publish[0]),
        med(|f| f.publish[1]),
        med(|f| f.publish[2])
    );
    println!(
        "| of which compile | {:.0} | {:.0} | {:.0} |",
        med(|f| f.compile[0]),
        med(|f| f.compile[1]),
        med(|f| f.compile[2])
    );
    println!(
        "| client round trip (validate, fsync, publish, answer) | {:.0} | {:.0} | {:.0} |",
        med(|f| f.round_trip[0]),
        med(|f| f.round_trip[1]),
        med(|f| f.round_trip[2])
    );
    println!("\nchanges acknowledged per second (median): {:.0}", med(|f| f.changes_per_sec));
}
