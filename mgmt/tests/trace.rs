//! `vpcgate trace` agrees with the pipeline, and the reachability form answers for
//! whole connections of the three-tier scenario.

#[path = "support/diffgen.rs"]
mod diffgen;
mod support;

use dataplane::pipeline::{Frame, Pipeline, PipelineConfig};
use dataplane::port::pcap::read_capture;
use mgmt::replay::load_config;
use mgmt::trace::{judge, trace_offline, TraceRequest};
use support::three_tier as tt;

const NOW: u64 = 1_795_305_600_000_000_000;

fn reach(from: &str, to: &str, proto: &str, dport: u16) -> Vec<String> {
    let (_, t) = load_config(std::path::Path::new(tt::CONFIG)).unwrap();
    let req = TraceRequest {
        from: Some(from.into()),
        to: Some(to.into()),
        protocol: Some(proto.into()),
        dport: Some(dport),
        ..Default::default()
    };
    trace_offline(&t, &req, NOW)
        .unwrap()
        .iter()
        .map(|l| format!("{}:{}", l.verdict, l.reason.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn reachability_answers_for_request_and_reply() {
    let (web, app, db) = ("eni-0f00d00000000b001", "eni-0f00d00000000b003", "eni-0f00d00000000b004");
    assert_eq!(reach(web, app, "tcp", 8080), vec!["forward:", "forward:"], "row 7");
    assert_eq!(reach(app, db, "tcp", 3306), vec!["forward:", "forward:"], "row 9");
    assert_eq!(reach(web, db, "tcp", 3306), vec!["reject:sg-egress"], "row 8b");
    assert_eq!(reach(web, app, "tcp", 22), vec!["reject:sg-ingress"], "row 8a");
    assert_eq!(reach(db, "198.19.0.10", "tcp", 443), vec!["reject:sg-egress"], "row 10");
    assert_eq!(
        reach(app, "198.19.0.10", "tcp", 443),
        vec!["forward:", "forward:"],
        "row 11: the reply returns by conntrack"
    );
}

#[test]
fn a_described_packet_names_the_rule_that_decided() {
    let (_, t) = load_config(std::path::Path::new(tt::CONFIG)).unwrap();
    let req = TraceRequest {
        port: Some("internet".into()),
        src: Some("198.19.66.6".into()),
        dst: Some("198.18.1.10".into()),
        protocol: Some("tcp".into()),
        dport: Some(80),
        ..Default::default()
    };
    let legs = trace_offline(&t, &req, NOW).unwrap();
    assert_eq!(legs[0].reason.as_deref(), Some("nacl-ingress"));
    let nacl = legs[0].steps.iter().find(|s| s["Hop"] == "nacl-ingress").unwrap();
    assert_eq!(nacl["RuleNumber"], 50);
    assert_eq!(nacl["Decision"], "deny");
    let ok = TraceRequest { src: Some("198.19.0.10".into()), ..req };
    let legs = trace_offline(&t, &ok, NOW).unwrap();
    let sg = legs[0].steps.iter().find(|s| s["Hop"] == "sg-ingress").unwrap();
    assert_eq!(sg["GroupId"], "sg-0f00d00000000e001");
    assert_eq!(sg["Tracking"], "tracked");
}

/// For every frame of every three-tier capture, the trace's verdict (judged against
/// the pipeline's state at that moment) is the verdict the pipeline then gives.
#[test]
fn trace_verdicts_equal_pipeline_verdicts_on_the_captures() {
    let (_, t) = load_config(std::path::Path::new(tt::CONFIG)).unwrap();
    for a in tt::attempts() {
        let mut p = Pipeline::new(PipelineConfig::default());
        let frames = read_capture(&std::path::PathBuf::from(tt::CAPTURES).join(format!("{}.pcapng", a.file))).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let port = t.port_by_name(f.interface.as_deref().unwrap()).unwrap();
            let traced = judge(&t, &mut p, port, &f.data, f.time, String::new());
            let mut buf = f.data.clone();
            buf.resize(2048, 0);
            let o = p.process_frame(&t, &mut Frame { buf: &mut buf, len: f.data.len(), port, time: f.time }, &mut ());
            assert_eq!(traced.verdict, o.verdict.name(), "row {} frame {i}", a.row);
            assert_eq!(traced.reason.as_deref(), o.verdict.reason(), "row {} frame {i}", a.row);
        }
    }
}

/// For every frame of the differential test's random scenarios (random NACLs and
/// groups, IPv4 and IPv6, ICMP, replies, fragments, config changes mid-flow, timeouts),
/// the trace's verdict, judged against the pipeline's state just before the frame, is
/// the verdict the pipeline then gives. `VPCGATE_DIFF_CONFIGS` / `VPCGATE_DIFF_FRAMES`
/// size it as they size the differential test.
#[test]
fn trace_verdicts_equal_pipeline_verdicts_on_the_differential_scenarios() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (configs, frames) = (env("VPCGATE_DIFF_CONFIGS", 20), env("VPCGATE_DIFF_FRAMES", 300) as usize);
    let mut judged = 0u64;
    for index in 0..configs {
        let sc = diffgen::scenario(1, index, frames);
        let pc = PipelineConfig { conntrack_entries: sc.config.appliance.conntrack.max_entries, ..Default::default() };
        let mut h = support::harness::Harness::with_pipeline(sc.config.clone(), pc);
        for (k, ev) in sc.events.iter().enumerate() {
            match ev {
                diffgen::Event::Advance(ns) => h.now += ns,
                diffgen::Event::Update { config, .. } => h.update(|c| *c = (**config).clone()),
                diffgen::Event::Send { port, frame, what } => {
                    let p = h.tables.port_by_name(port).unwrap();
                    let traced = judge(&h.tables, &mut h.pipeline, p, frame, h.now, String::new());
                    let o = h.send(port, frame);
                    let ctx = format!(
                        "config {index} event {k} ({what}): traced {:?} {:?}, pipeline {:?}",
                        traced.verdict, traced.reason, o.verdict
                    );
                    assert_eq!(traced.verdict, o.verdict.name(), "{ctx}");
                    assert_eq!(traced.reason.as_deref(), o.verdict.reason(), "{ctx}");
                    judged += 1;
                }
            }
        }
    }
    assert!(judged >= configs * frames as u64 / 2, "only {judged} frames judged");
}
