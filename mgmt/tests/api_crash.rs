//! Crash safety: `vpcgated` is killed with SIGKILL at random moments while a client
//! streams changes (rules, NACL entries, conntrack timeouts), again and again
//! (`VPCGATE_CRASH_KILLS`, default 200). After every kill the saved config must parse
//! and validate, and after every restart the daemon must serve exactly the last
//! acknowledged config, plus at most the one change that was in flight.

#[path = "support/daemon.rs"]
mod daemon;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use daemon::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What the change stream controls.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    /// Ingress tcp ports of the app group open to 10.0.0.0/8.
    ports: BTreeSet<i64>,
    /// Ingress deny entries (rule numbers) of NACL 1 besides rule 100.
    entries: BTreeSet<i64>,
    /// ENI a's TcpEstablishedTimeout.
    timeout: Option<i64>,
}

#[derive(Clone, Debug)]
enum Change {
    Open(i64),
    Close(i64),
    AddEntry(i64),
    DeleteEntry(i64),
    Timeout(i64),
}

impl Change {
    fn apply(&self, m: &mut Model) {
        match *self {
            Change::Open(p) => {
                m.ports.insert(p);
            }
            Change::Close(p) => {
                m.ports.remove(&p);
            }
            Change::AddEntry(n) => {
                m.entries.insert(n);
            }
            Change::DeleteEntry(n) => {
                m.entries.remove(&n);
            }
            Change::Timeout(t) => m.timeout = Some(t),
        }
    }

    fn request(&self) -> Value {
        let perm =
            |p: i64| json!([{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]);
        match *self {
            Change::Open(p) => {
                json!({"Action": "AuthorizeSecurityGroupIngress", "GroupId": SG_APP, "IpPermissions": perm(p)})
            }
            Change::Close(p) => {
                json!({"Action": "RevokeSecurityGroupIngress", "GroupId": SG_APP, "IpPermissions": perm(p)})
            }
            Change::AddEntry(n) => json!({"Action": "CreateNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": n,
                "Protocol": "-1", "RuleAction": "deny", "Egress": false, "CidrBlock": format!("192.0.2.{n}/32")}),
            Change::DeleteEntry(n) => {
                json!({"Action": "DeleteNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": n, "Egress": false})
            }
            Change::Timeout(t) => json!({"Action": "ModifyNetworkInterfaceAttribute", "NetworkInterfaceId": ENI_A,
                "ConnectionTrackingSpecification": {"TcpEstablishedTimeout": t}}),
        }
    }
}

fn next_change(rng: &mut impl Rng, m: &Model) -> Change {
    match rng.gen_range(0..5) {
        0 | 1 => {
            let p = rng.gen_range(1000..1040);
            if m.ports.contains(&p) {
                Change::Close(p)
            } else {
                Change::Open(p)
            }
        }
        2 | 3 => {
            let n = rng.gen_range(200..210);
            if m.entries.contains(&n) {
                Change::DeleteEntry(n)
            } else {
                Change::AddEntry(n)
            }
        }
        _ => Change::Timeout(rng.gen_range(60..432_000)),
    }
}

/// The model of a config document (the saved file or an export).
fn model_of(doc: &Value) -> Model {
    let ports = rules_of(doc, SG_APP)
        .iter()
        .filter_map(|r| r.strip_prefix("in "))
        .map(|rest| {
            assert!(rest.starts_with("tcp ") && rest.ends_with(" 10.0.0.0/8"), "unexpected rule {rest}");
            rest[4..].split('-').next().unwrap().parse().unwrap()
        })
        .collect();
    let nacl = doc["NetworkAcls"].as_array().unwrap().iter().find(|n| n["NetworkAclId"] == NACL_1).unwrap();
    let entries = nacl["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Egress"] == false && (200..210).contains(&e["RuleNumber"].as_i64().unwrap()))
        .map(|e| e["RuleNumber"].as_i64().unwrap())
        .collect();
    let eni = doc["NetworkInterfaces"].as_array().unwrap().iter().find(|n| n["NetworkInterfaceId"] == ENI_A).unwrap();
    let timeout = eni["ConnectionTrackingConfiguration"]["TcpEstablishedTimeout"].as_i64();
    Model { ports, entries, timeout }
}

#[test]
fn sigkill_during_a_stream_of_changes_loses_no_acknowledged_change() {
    let kills: usize = std::env::var("VPCGATE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("VPCGATE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test: {kills} kills, seed {seed} (VPCGATE_CRASH_SEED to replay)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let t0 = Instant::now();

    let mut d = Daemon::start_named("crash", &fixture());
    let mut model = model_of(&d.export());
    let (mut acked, mut in_flight_landed, mut in_flight_lost) = (0usize, 0usize, 0usize);
    for round in 0..kills {
        if round > 0 {
            d.spawn();
            d.wait_ready();
            // After the restart the daemon serves exactly the last acknowledged config.
            assert_eq!(model_of(&d.export()), model, "round {round}: the restarted daemon lost or invented a change");
        }
        // The killer: SIGKILL after a random delay, while the client streams changes.
        let pid = d.pid();
        let delay = Duration::from_micros(rng.gen_range(0..60_000));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: kill(2) on our child's pid; the main thread reaps it only after
            // joining this thread, so the pid cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let mut in_flight: Option<Change> = None;
        if let Ok(stream) = UnixStream::connect(&d.socket) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            loop {
                let change = next_change(&mut rng, &model);
                in_flight = Some(change.clone());
                if writer.write_all(format!("{}\n", change.request()).as_bytes()).is_err() {
                    break;
                }
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
                let answer: Value = serde_json::from_str(&line).expect("the daemon answers JSON");
                assert!(answer.get("Error").is_none(), "round {round}: {change:?} refused: {answer}");
                change.apply(&mut model);
                acked += 1;
            }
        }
        killer.join().unwrap();
        let _ = d.child.take().unwrap().wait();

        // The saved file parses, validates, and holds every acknowledged change.
        let text = std::fs::read_to_string(d.state.join("config.json")).expect("a saved config exists");
        let saved = mgmt::model::Config::from_json(&text)
            .unwrap_or_else(|e| panic!("round {round}: saved config unreadable: {e}"));
        let checked =
            mgmt::validate::check(&saved).unwrap_or_else(|e| panic!("round {round}: saved config invalid: {e}"));
        let found = model_of(&serde_json::to_value(&checked.config).unwrap());
        if found != model {
            let change =
                in_flight.clone().unwrap_or_else(|| panic!("round {round}: saved {found:?}, acknowledged {model:?}"));
            change.apply(&mut model);
            assert_eq!(
                found, model,
                "round {round}: saved config is neither the acknowledged one nor it plus {change:?}"
            );
            in_flight_landed += 1;
        } else if in_flight.is_some() {
            in_flight_lost += 1;
        }
    }
    d.spawn();
    d.wait_ready();
    assert_eq!(model_of(&d.export()), model);
    eprintln!(
        "crash test: {kills} SIGKILLs, {acked} acknowledged changes, all present after every restart; \
         the change in flight had been saved {in_flight_landed} times and not {in_flight_lost} times; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
