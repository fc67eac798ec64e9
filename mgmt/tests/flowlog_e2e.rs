//! Flow logs end to end through `vpcgate replay --flow-log-root`: the records the
//! three-tier scenario must produce for every row (ACCEPT at both ENIs of an
//! internal connection, REJECT at the ENI that refused, NODATA for the silent ones),
//! and section 4.2's two-record NACL example.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use dataplane::port::pcap::PcapNgWriter;
use dataplane::testkit::{self, Host};
use mgmt::replay::{replay, ReplayOptions};
use support::three_tier::{self as tt, Expect};

const WEB: &str = "eni-0f00d00000000b001";
const BASTION: &str = "eni-0f00d00000000b002";
const APP: &str = "eni-0f00d00000000b003";
const DB: &str = "eni-0f00d00000000b004";

fn eni_of(port: &str) -> Option<&'static str> {
    match port {
        "web" => Some(WEB),
        "bastion" => Some(BASTION),
        "app" => Some(APP),
        "db" => Some(DB),
        _ => None,
    }
}

/// Every record (header line skipped) of every gzip file under `dir`.
fn records(dir: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "gz") {
                let mut text = String::new();
                flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).unwrap()).read_to_string(&mut text).unwrap();
                let mut lines = text.lines();
                assert_eq!(lines.next().unwrap().split(' ').next(), Some("version"), "header line first");
                out.extend(lines.map(|l| l.split(' ').map(str::to_string).collect()));
            }
        }
    }
    out
}

fn replay_with_logs(config: &Path, pcap: &Path, root: &Path) {
    let opts = ReplayOptions {
        config: config.to_path_buf(),
        pcap: pcap.to_path_buf(),
        verdicts: None,
        out: None,
        port: None,
        explain: false,
        flow_log_root: Some(root.to_path_buf()),
        stats: None,
    };
    replay(&opts).unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vpcgate-flowlog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// (interface-id, action) -> packets, for the default-format records.
fn by_eni_action(recs: &[Vec<String>]) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for r in recs {
        assert_eq!(r.len(), 14, "default format: 14 fields: {r:?}");
        let key = (r[2].clone(), if r[13] == "OK" { r[12].clone() } else { r[13].clone() });
        *m.entry(key).or_default() += r[8].parse::<u64>().unwrap_or(0);
    }
    m
}

#[test]
fn every_scenario_row_produces_the_predicted_records() {
    for a in tt::attempts() {
        let root = tmp(a.file);
        replay_with_logs(Path::new(tt::CONFIG), &PathBuf::from(tt::CAPTURES).join(format!("{}.pcapng", a.file)), &root);
        let recs = records(&root);
        let got = by_eni_action(&recs);
        let src = eni_of(a.frames[0].port);
        let dst_port = a.frames.iter().map(|f| f.port).find(|p| *p != a.frames[0].port);
        let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
        let n = a.frames.len() as u64;
        match a.expect {
            Expect::Connects => {
                // Every packet, both directions, is accounted at each ENI it crosses.
                let dst = dst_port.and_then(eni_of);
                for eni in [src, dst].into_iter().flatten() {
                    want.insert((eni.into(), "ACCEPT".into()), n);
                }
            }
            Expect::Refused(hop) => {
                // The scenario's refused attempts never get an answer: one flow.
                let dst = match a.row {
                    "3" | "13" | "13b" | "12" => Some(WEB),
                    "6" | "8b" => Some(DB),
                    "8a" => Some(APP),
                    "10" => None,
                    other => panic!("row {other}"),
                };
                match hop {
                    "sg-egress" | "nacl-egress" => {
                        want.insert((src.unwrap().into(), "REJECT".into()), n);
                    }
                    _ => {
                        if let Some(s) = src {
                            want.insert((s.into(), "ACCEPT".into()), n);
                        }
                        want.insert((dst.unwrap().into(), "REJECT".into()), n);
                    }
                }
            }
        }
        for eni in [WEB, BASTION, APP, DB] {
            if !want.keys().any(|(e, _)| e == eni) {
                want.insert((eni.into(), "NODATA".into()), 0);
            }
        }
        assert_eq!(got, want, "row {} ({}): {recs:#?}", a.row, a.what);
        std::fs::remove_dir_all(&root).ok();
    }
}

/// The switch's per-ENI counters add up to what its flow log says: ACCEPT = packets
/// that left the ENI (even if refused at the destination) plus packets delivered to
/// it; REJECT = packets refused on the way out plus on the way in.
#[test]
fn per_eni_counters_equal_the_flow_log_sums_for_every_row() {
    for a in tt::attempts() {
        let root = tmp(&format!("{}-stats", a.file));
        let stats_path = root.with_extension("json");
        let opts = ReplayOptions {
            config: PathBuf::from(tt::CONFIG),
            pcap: PathBuf::from(tt::CAPTURES).join(format!("{}.pcapng", a.file)),
            verdicts: None,
            out: None,
            port: None,
            explain: false,
            flow_log_root: Some(root.clone()),
            stats: Some(stats_path.clone()),
        };
        replay(&opts).unwrap();
        let mut logged: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for r in records(&root).iter().filter(|r| r[13] == "OK") {
            let e = logged.entry((r[2].clone(), r[12].clone())).or_default();
            e.0 += r[8].parse::<u64>().unwrap();
            e.1 += r[9].parse::<u64>().unwrap();
        }
        let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
        let mut counted: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for e in stats["NetworkInterfaces"].as_array().unwrap() {
            let n = |k: &str| e[k].as_u64().unwrap();
            let id = e["NetworkInterfaceId"].as_str().unwrap().to_string();
            let accept = (n("OutPackets") + n("InPackets"), n("OutBytes") + n("InBytes"));
            let reject = (n("RejectedOut") + n("RejectedIn"), n("RejectedOutBytes") + n("RejectedInBytes"));
            for (action, v) in [("ACCEPT", accept), ("REJECT", reject)] {
                if v != (0, 0) {
                    counted.insert((id.clone(), action.into()), v);
                }
            }
        }
        assert!(!counted.is_empty(), "row {}: nothing counted", a.row);
        assert_eq!(counted, logged, "row {} ({})", a.row, a.what);
        std::fs::remove_dir_all(&root).ok();
        std::fs::remove_file(&stats_path).ok();
    }
}

#[test]
fn nacl_example_of_section_4_2_gives_an_accept_and_a_reject_record() {
    // An inbound ping allowed by NACL and SG is logged ACCEPT; the reply, allowed by
    // the stateful SG but denied by the outbound NACL, is a second record, REJECT.
    let dir = tmp("nacl-example");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = support::small::config();
    let acl = cfg.network_acls.iter_mut().find(|n| n.network_acl_id == support::small::NACL_1).unwrap();
    acl.entries = serde_json::from_value(serde_json::json!([
        {"RuleNumber": 100, "Protocol": "1", "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0", "IcmpTypeCode": {"Type": -1, "Code": -1}},
        {"RuleNumber": 100, "Protocol": "1", "RuleAction": "deny", "Egress": true, "CidrBlock": "0.0.0.0/0", "IcmpTypeCode": {"Type": -1, "Code": -1}}
    ]))
    .unwrap();
    support::small::sg(&mut cfg, support::small::SG_A).ip_permissions.push(support::small::perm(
        "icmp",
        -1,
        -1,
        "0.0.0.0/0",
    ));
    cfg.flow_logs = serde_json::from_value(serde_json::json!([{
        "FlowLogId": "fl-00000000000000001", "ResourceId": support::small::ENI_A, "TrafficType": "ALL",
        "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::example", "MaxAggregationInterval": 60
    }]))
    .unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, cfg.to_json()).unwrap();
    let (x, a) = (support::small::x(), support::small::a());
    let router = support::small::router();
    let pcap = dir.join("ping.pcapng");
    let mut w = PcapNgWriter::create(&pcap).unwrap();
    let t0 = 1_795_305_600_000_000_000u64;
    w.write("inet", t0, &testkit::echo(&x, a.ip, router, 7, 1, false)).unwrap();
    w.write("pa", t0 + 1_000_000, &testkit::echo(&Host { ..a }, x.ip, router, 7, 1, true)).unwrap();
    w.finish().unwrap();
    let root = dir.join("logs");
    replay_with_logs(&config, &pcap, &root);
    let recs = records(&root);
    let mut lines: Vec<String> = recs.iter().map(|r| format!("{} {} {} {}", r[3], r[4], r[7], r[12])).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["198.18.1.10 198.19.0.10 1 REJECT".to_string(), "198.19.0.10 198.18.1.10 1 ACCEPT".to_string()],
        "{recs:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
