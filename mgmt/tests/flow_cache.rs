//! The flow cache changes nothing but speed. The differential scenarios (random
//! configs, multi-packet flows with replies, rule changes mid-flow, timeouts crossed)
//! run, under a VPC flow log, through a pipeline with the flow cache and one without:
//! every frame gets the same outcome and leaves as the same bytes, and in the end both
//! have the same counters (per verdict and per ENI) and the same flow records.
//!
//! Each scenario's traffic is sent twice over, and every frame three times in a row
//! (a retransmission, a burst), so flows are carried long enough to be cached and
//! refused 5-tuples come back often enough to be.
//! Size: `VPCGATE_CACHE_CONFIGS` configs (default 150) x `VPCGATE_CACHE_FRAMES`.

#[path = "support/capture.rs"]
mod capture;
#[path = "support/diffgen.rs"]
mod diffgen;
#[path = "support/harness.rs"]
mod harness;

use dataplane::pipeline::PipelineConfig;
use diffgen::{scenario, Event};
use harness::Harness;
use mgmt::model::Config;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The config with every VPC under a flow log of all traffic.
fn logged(mut c: Config) -> Config {
    c.flow_logs = c
        .vpcs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(serde_json::json!({
                "FlowLogId": format!("fl-0cac4e00000000{i:03}"), "ResourceId": v.vpc_id, "TrafficType": "ALL",
                "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::cache-test",
                "MaxAggregationInterval": 60}))
            .expect("flow log")
        })
        .collect();
    c
}

/// Every flow record the pipeline holds after flushing, as sorted text.
fn records(h: &mut Harness) -> Vec<String> {
    h.pipeline.flush_accounting(&h.tables, h.now);
    let mut out: Vec<String> = h.pipeline.take_records().records().iter().map(|r| format!("{r:?}")).collect();
    out.sort();
    out
}

#[test]
fn the_flow_cache_changes_no_outcome_counter_or_flow_record() {
    let seed = env("VPCGATE_CACHE_SEED", 0x6361_6368_6531);
    let configs = env("VPCGATE_CACHE_CONFIGS", 150);
    let frames = env("VPCGATE_CACHE_FRAMES", 300) as usize;
    let (mut hits, mut compared) = (0u64, 0usize);
    for index in 0..configs {
        let sc = scenario(seed, index, frames);
        let mut with = Harness::new(logged(sc.config.clone()));
        let mut without = Harness::with_pipeline(
            logged(sc.config.clone()),
            PipelineConfig { flow_cache_entries: 0, ..Default::default() },
        );
        for round in 0..2 {
            for (k, ev) in sc.events.iter().enumerate() {
                match ev {
                    Event::Advance(ns) => {
                        with.now += ns;
                        without.now += ns;
                    }
                    Event::Update { config, .. } => {
                        with.update(|c| *c = logged((**config).clone()));
                        without.update(|c| *c = logged((**config).clone()));
                    }
                    Event::Send { port, frame, what } => {
                        for _ in 0..3 {
                            let (a, b) =
                                (capture::send(&mut with, port, frame), capture::send(&mut without, port, frame));
                            assert!(
                                a.verdict == b.verdict && a.out == b.out,
                                "config {index}, round {round}, event {k} ({what}): with the cache {} ({:02x?}), without {} ({:02x?})",
                                a.verdict,
                                a.out,
                                b.verdict,
                                b.out
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
        let (sa, sb) = (&with.pipeline.stats, &without.pipeline.stats);
        assert_eq!(
            (sa.bytes, sa.forwarded, sa.rejected, sa.dropped, sa.untracked, &sa.per_eni),
            (sb.bytes, sb.forwarded, sb.rejected, sb.dropped, sb.untracked, &sb.per_eni),
            "config {index}: counters differ"
        );
        assert_eq!(sb.flow_cache_hits, 0);
        hits += sa.flow_cache_hits;
        assert_eq!(records(&mut with), records(&mut without), "config {index}: flow records differ");
    }
    eprintln!("flow cache: {configs} configs, {compared} frames compared, {hits} from the cache");
    assert!(hits > compared as u64 / 50, "too few frames took the flow cache to tell: {hits} of {compared}");
}
