//! Differential test: the real pipeline (through the test harness, with its config
//! validated, compiled and swapped as the daemon does) against the independent oracle
//! of `tests/oracle/`, on random configs and random traffic with rule changes and a
//! controlled clock. Zero disagreements are allowed on the verdict, the reject hop or
//! drop reason, the egress port and the destination MAC of forwarded frames.
//!
//! Size: `VPCGATE_DIFF_CONFIGS` configs (default 60) x `VPCGATE_DIFF_FRAMES` frames
//! (default 500); seed `VPCGATE_DIFF_SEED` (default fixed); `VPCGATE_DIFF_ONLY=N` runs
//! config N alone. Full run:
//! `VPCGATE_DIFF_CONFIGS=1000 VPCGATE_DIFF_FRAMES=1000 cargo test --release -p mgmt --test differential`

#[path = "support/capture.rs"]
mod capture;
#[path = "support/diffgen.rs"]
mod diffgen;
#[path = "support/harness.rs"]
mod harness;
mod oracle;

use std::collections::BTreeMap;
use std::time::Instant;

use diffgen::{scenario, Event};
use harness::Harness;
use oracle::{Oracle, Verdict};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(m: Option<[u8; 6]>) -> String {
    match m {
        Some(m) => m
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        None => "-".into(),
    }
}

/// Catches a panic of the harness (a rejected config) and says which scenario.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(x) => x,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: {msg}");
        }
    }
}

/// Runs config `index`; returns the number of frames, or a report of the first
/// disagreement.
fn run_one(seed: u64, index: u64, frames: usize, tally: &mut BTreeMap<String, u64>) -> Result<usize, String> {
    let sc = scenario(seed, index, frames);
    let ctx = format!("seed {seed} config {index}");
    let mut h = guarded(&format!("{ctx}: generated config rejected"), || {
        Harness::new(sc.config.clone())
    });
    let mut o = Oracle::new(&sc.config);
    let mut n = 0usize;
    for (k, ev) in sc.events.iter().enumerate() {
        match ev {
            Event::Advance(ns) => h.now += ns,
            Event::Update { config, what } => {
                guarded(&format!("{ctx} event {k} ({what}): updated config rejected"), || {
                    h.update(|c| *c = (**config).clone())
                });
                o.set_config(config);
            }
            Event::Send { port, frame, what } => {
                let real = capture::send(&mut h, port, frame);
                let want = o.process(port, frame, h.now);
                let same = real.verdict == want.short()
                    && match &want {
                        Verdict::Forward { dst_mac, .. } => real.dst_mac == Some(*dst_mac),
                        _ => true,
                    };
                *tally.entry(want.short().split(':').take(2).collect::<Vec<_>>().join(":")).or_default() += 1;
                if !same {
                    let want_mac = match &want {
                        Verdict::Forward { dst_mac, .. } => Some(*dst_mac),
                        _ => None,
                    };
                    // The pipeline's reasoning just before the frame: replay up to it.
                    let explain = replay_explain(&sc, k, port, frame);
                    let path = std::env::temp_dir().join(format!("vpcgate-diff-{seed}-{index}.json"));
                    let _ = std::fs::write(&path, sc.config.to_json());
                    return Err(format!(
                        "DISAGREEMENT\n  seed {seed}, config {index}, frame {n} (event {k}), port {port}\n  frame: {what}\n  bytes: {}\n  pipeline: {} (dst MAC {})\n  oracle:   {} (dst MAC {})\n  oracle's reasoning:\n    {}\n  pipeline's explanation:\n    {}\n  initial config written to {}\n  rerun: VPCGATE_DIFF_SEED={seed} VPCGATE_DIFF_ONLY={index} VPCGATE_DIFF_FRAMES={frames}",
                        hex(frame),
                        real.verdict,
                        mac(real.dst_mac),
                        want.short(),
                        mac(want_mac),
                        o.trace.join("\n    "),
                        explain.join("\n    "),
                        path.display(),
                    ));
                }
                n += 1;
            }
        }
    }
    Ok(n)
}

fn replay_explain(sc: &diffgen::Scenario, upto: usize, port: &str, frame: &[u8]) -> Vec<String> {
    let mut h = Harness::new(sc.config.clone());
    for ev in &sc.events[..upto] {
        match ev {
            Event::Advance(ns) => h.now += ns,
            Event::Update { config, .. } => h.update(|c| *c = (**config).clone()),
            Event::Send { port, frame, .. } => {
                capture::send(&mut h, port, frame);
            }
        }
    }
    h.explain(port, frame)
}

#[test]
fn pipeline_agrees_with_the_oracle_on_random_configs_and_traffic() {
    let seed = env("VPCGATE_DIFF_SEED", 0x7670_6367_6174_6531);
    let configs = env("VPCGATE_DIFF_CONFIGS", 60);
    let frames = env("VPCGATE_DIFF_FRAMES", 500) as usize;
    let only = std::env::var("VPCGATE_DIFF_ONLY").ok().map(|v| v.parse::<u64>().unwrap());
    let start = Instant::now();
    let mut total = 0usize;
    let mut tally = BTreeMap::new();
    let range: Vec<u64> = match only {
        Some(i) => vec![i],
        None => (0..configs).collect(),
    };
    for &i in &range {
        match run_one(seed, i, frames, &mut tally) {
            Ok(n) => total += n,
            Err(report) => panic!("{report}"),
        }
    }
    eprintln!(
        "differential: seed {seed:#x}, {} configs, {total} frames, 0 disagreements, {:.1} s",
        range.len(),
        start.elapsed().as_secs_f64()
    );
    eprintln!("verdicts seen: {tally:?}");
}
