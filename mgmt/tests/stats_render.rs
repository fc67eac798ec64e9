//! Rendering of the stats board: `TopFlows` (merged across workers, ordered, bounded)
//! and the Prometheus text of a board with workers, queues and flow logs.

#[path = "support/small.rs"]
mod small;

use dataplane::accounting::FlowId;
use dataplane::addr::Family;
use dataplane::pipeline::{DropReason, Hop};
use dataplane::tables::{EniId, Tables};
use mgmt::stats::{
    prometheus, snapshot_json, top_flows_json, FlowLogCounters, FlowSample, QueueCounters, WorkerSnapshot, TOP_FLOWS,
};
use serde_json::json;

fn tables() -> Tables {
    mgmt::compile::compile_once(&mgmt::validate::check(&small::config()).unwrap())
}

fn key(t: &Tables, id: &str) -> EniId {
    t.eni_by_name(id).unwrap().key
}

fn sample(eni: EniId, accept: bool, sport: u16, packets: u64, bytes: u64) -> FlowSample {
    FlowSample {
        id: FlowId {
            eni,
            egress: true,
            accept,
            to_uplink: true,
            family: Family::V4,
            proto: 6,
            src: 0xc612_010a,
            dst: 0xc613_000a,
            sport,
            dport: 443,
        },
        rejected_at: (!accept).then_some(Hop::SgEgress),
        packets,
        bytes,
        last_seen: 0,
    }
}

#[test]
fn top_flows_are_merged_ordered_and_bounded() {
    let t = tables();
    let a = key(&t, small::ENI_A);
    let mut samples = vec![
        sample(a, true, 1000, 10, 100),
        sample(a, true, 1001, 1, 5000),
        sample(a, false, 1002, 7, 70),
        sample(a, false, 1003, 9, 9),
        // The first flow again, counted by another worker (handed over).
        sample(a, true, 1000, 5, 50),
    ];
    let mut v6 = sample(key(&t, small::ENI_C), true, 1004, 1, 1);
    v6.id.family = Family::V6;
    v6.id.src = 0x2600_1f18_aaaa_0002_0000_0000_0000_0010;
    v6.id.dst = 1;
    samples.push(v6);
    let v = top_flows_json(&t, &samples);
    let rows: Vec<(String, u64, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (f["Action"].as_str().unwrap().to_string(), f["SrcPort"].as_u64().unwrap(), f["Packets"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ACCEPT".into(), 1001, 1), // most bytes first
            ("ACCEPT".into(), 1000, 15),
            ("ACCEPT".into(), 1004, 1),
            ("REJECT".into(), 1003, 9), // most packets first
            ("REJECT".into(), 1002, 7),
        ]
    );
    let first = &v[1];
    assert_eq!(
        *first,
        json!({"NetworkInterfaceId": small::ENI_A, "Direction": "egress", "Src": "198.18.1.10", "Dst": "198.19.0.10",
               "SrcPort": 1000, "DstPort": 443, "Protocol": 6, "Action": "ACCEPT", "RejectedAt": null,
               "Packets": 15, "Bytes": 150})
    );
    assert_eq!(v[3]["RejectedAt"], "sg-egress");
    assert_eq!(v[2]["Src"], "2600:1f18:aaaa:2::10");
    assert_eq!(v[2]["Dst"], "::1");

    // Bounded: TOP_FLOWS of each action.
    let many: Vec<FlowSample> =
        (0..200u16).flat_map(|i| [sample(a, true, i, 1, i as u64), sample(a, false, i, i as u64, 1)]).collect();
    let v = top_flows_json(&t, &many);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2 * TOP_FLOWS);
    assert_eq!(list[0]["Bytes"], 199);
    assert_eq!(list[TOP_FLOWS - 1]["Bytes"], 200 - TOP_FLOWS as u64);
    assert_eq!(list[TOP_FLOWS]["Packets"], 199);
    assert!(top_flows_json(&t, &[]).as_array().unwrap().is_empty());
}

#[test]
fn prometheus_text_of_a_board_with_workers() {
    let t = tables();
    let a = key(&t, small::ENI_A).0 as usize;
    let mut w0 = WorkerSnapshot::new(0, Some(2));
    w0.stats.forwarded = 991;
    w0.stats.bytes = 64_000;
    w0.stats.untracked = 3;
    w0.stats.rejected[Hop::NaclIngress as usize] = 7;
    w0.stats.dropped[DropReason::NoRoute.kind_index()] = 2;
    w0.stats.ensure_enis(t.enis.len());
    w0.stats.per_eni[a].in_bytes = 4242;
    w0.conntrack_capacity = 1024;
    w0.queues.push(QueueCounters {
        port: "pa".into(),
        queue: 0,
        rx_packets: 9,
        rx_bytes: 900,
        tx_packets: 8,
        tx_bytes: 800,
        rx_dropped: 1,
    });
    for n in [10, 20, 30, 64] {
        w0.batch_sizes.record(n).unwrap();
    }
    let w1 = WorkerSnapshot::new(1, None);
    let fl =
        FlowLogCounters { flow_log_id: "fl-0a000000000000001".into(), files: 3, bytes: 5000, ..Default::default() };
    let text = prometheus(&snapshot_json(&t, &[w0, w1], &[fl]));
    for line in [
        "vpcgate_frames_total{worker=\"0\"} 1000",
        "vpcgate_frames_total{worker=\"1\"} 0",
        "vpcgate_bytes_total{worker=\"0\"} 64000",
        "vpcgate_untracked_total{worker=\"0\"} 3",
        "vpcgate_worker_info{worker=\"0\",core=\"2\"} 1",
        "vpcgate_worker_info{worker=\"1\",core=\"\"} 1",
        "vpcgate_rejected_total{worker=\"0\",hop=\"nacl-ingress\"} 7",
        "vpcgate_dropped_total{worker=\"0\",reason=\"no-route\"} 2",
        "vpcgate_conntrack_capacity{worker=\"0\"} 1024",
        "vpcgate_batch_size_frames{worker=\"0\",quantile=\"1\"} 64",
        "vpcgate_port_rx_bytes_total{port=\"pa\",queue=\"0\"} 900",
        "vpcgate_port_tx_bytes_total{port=\"pa\",queue=\"0\"} 800",
        "vpcgate_port_rx_dropped_total{port=\"pa\",queue=\"0\"} 1",
        &format!("vpcgate_eni_in_bytes_total{{eni=\"{}\"}} 4242", small::ENI_A),
        "vpcgate_flowlog_files_total{flow_log=\"fl-0a000000000000001\"} 3",
        "vpcgate_flowlog_bytes_total{flow_log=\"fl-0a000000000000001\"} 5000",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
    }
    // Every family is declared once, HELP then TYPE, before its samples.
    let mut declared = std::collections::HashSet::new();
    let mut current = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(declared.insert(name.to_string()), "{name} twice");
        } else if let Some(rest) = l.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap().to_string();
            assert!(declared.contains(&current));
        } else {
            assert!(l.starts_with(&current) && l[current.len()..].starts_with(['{', ' ']), "{l} under {current}");
        }
    }
}
