//! Single-core pipeline benchmark, in memory (no NIC): Mpps and ns/frame for
//! established flows, new flows and NACL denies, with an AWS-quota config and with
//! ClassBench 10k filter sets as one ENI's security group; and raw classifier
//! lookups/s. Frames are copied into the batch buffers before every batch (as a NIC
//! would have written them), and that copy is part of the measured time.
//!
//! `cargo run --release -p perf --bin pipeline-bench [-- --runs 5 --quick --quota-only]`
//! Prints a markdown table (medians of the runs) for BENCHMARKS.md.

use std::time::Instant;

use dataplane::addr::Family;
use dataplane::pipeline::{Frame, Hop, Outcome, Pipeline, PipelineConfig, Verdict};
use dataplane::tables::Tables;
use dataplane::testkit::{self, Flags};
use hdrhistogram::Histogram;
use mgmt::compile::compile_once;
use mgmt::model::Config;
use mgmt::validate::check;
use perf::bench_config::{self as bc, router};
use perf::classbench;
use rand::Rng;

const BATCH: usize = 64;
const BUF: usize = 2048;

#[derive(Clone, Copy)]
enum Expect {
    Forward,
    Reject(Hop),
}

struct Frames {
    port: u16,
    frames: Vec<Vec<u8>>,
}

struct Result {
    mpps: f64,
    p50_ns: u64,
    p99_ns: u64,
}

fn tables_for(cfg: &Config) -> Tables {
    compile_once(&check(cfg).unwrap_or_else(|e| panic!("bench config rejected: {e}")))
}

/// Runs `frames` (in order, wrapping) through `pipeline` in batches of 64 until
/// `total` frames were processed. Returns the rate and per-frame latency (per-batch
/// time / batch size) percentiles. Panics if any frame gets a verdict other than
/// `expect`, so a benchmark cannot silently measure the wrong path.
fn run(
    pipeline: &mut Pipeline,
    tables: &Tables,
    input: &Frames,
    total: usize,
    expect: Expect,
    now: &mut u64,
) -> Result {
    let mut bufs = vec![vec![0u8; BUF]; BATCH];
    let mut out = [Outcome { verdict: Verdict::Reply, head: 0, len: 0 }; BATCH];
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let mut done = 0;
    let mut next = 0;
    let start = Instant::now();
    while done < total {
        let t0 = Instant::now();
        let mut frames: Vec<Frame<'_>> = Vec::with_capacity(BATCH);
        for buf in bufs.iter_mut() {
            let f = &input.frames[next % input.frames.len()];
            next += 1;
            buf[..f.len()].copy_from_slice(f);
            frames.push(Frame { buf, len: f.len(), port: input.port, time: *now });
        }
        pipeline.process(tables, &mut frames, &mut out);
        let ns = t0.elapsed().as_nanos() as u64;
        hist.record((ns / BATCH as u64).max(1)).ok();
        let right = out.iter().all(|o| match expect {
            Expect::Forward => matches!(o.verdict, Verdict::Forward(_)),
            Expect::Reject(h) => o.verdict == Verdict::Reject(h),
        });
        assert!(
            right,
            "benchmark traffic took the wrong path: {:?}",
            out.iter().find(|o| o.verdict.name() != "forward")
        );
        done += BATCH;
        *now += 1_000; // 1 us per batch of appliance time
    }
    let secs = start.elapsed().as_secs_f64();
    Result { mpps: done as f64 / secs / 1e6, p50_ns: hist.value_at_quantile(0.5), p99_ns: hist.value_at_quantile(0.99) }
}

fn median(mut v: Vec<Result>) -> Result {
    v.sort_by(|a, b| a.mpps.total_cmp(&b.mpps));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

fn established(cfg: &Config, flows: u32, total: usize, runs: usize) -> Result {
    let tables = tables_for(cfg);
    let inet = tables.port_by_name("inet").unwrap();
    let mut results = Vec::new();
    for _ in 0..runs {
        let mut p = Pipeline::new(PipelineConfig { conntrack_entries: flows * 2 + 1024, ..Default::default() });
        let mut now = 1_795_305_600_000_000_000u64;
        let server = bc::server();
        let server_port = tables.port_by_name("server").unwrap();
        // Open every flow with a real handshake.
        let mut open = Vec::new();
        for i in 0..flows {
            let c = bc::client(i);
            let sport = 10_000 + (i % 50_000) as u16;
            open.push((inet, testkit::tcp(&c, server.ip, router(), sport, 443, Flags::SYN, 1, 0, &[])));
            open.push((server_port, testkit::tcp(&server, c.ip, router(), 443, sport, Flags::SYN_ACK, 1, 2, &[])));
            open.push((inet, testkit::tcp(&c, server.ip, router(), sport, 443, Flags::ACK, 2, 2, &[])));
        }
        for (port, f) in &open {
            let mut buf = f.clone();
            buf.resize(BUF, 0);
            let o =
                p.process_frame(&tables, &mut Frame { buf: &mut buf, len: f.len(), port: *port, time: now }, &mut ());
            assert_eq!(o.verdict.name(), "forward");
        }
        let data: Vec<Vec<u8>> = (0..flows)
            .map(|i| {
                testkit::tcp(
                    &bc::client(i),
                    server.ip,
                    router(),
                    10_000 + (i % 50_000) as u16,
                    443,
                    Flags::ACK,
                    2,
                    2,
                    &[0; 6],
                )
            })
            .collect();
        results.push(run(&mut p, &tables, &Frames { port: inet, frames: data }, total, Expect::Forward, &mut now));
    }
    median(results)
}

fn new_flows(cfg: &Config, frames: Vec<Vec<u8>>, runs: usize) -> Result {
    let tables = tables_for(cfg);
    let inet = tables.port_by_name("inet").unwrap();
    let total = frames.len() / BATCH * BATCH;
    let input = Frames { port: inet, frames };
    let mut results = Vec::new();
    for _ in 0..runs {
        let mut p = Pipeline::new(PipelineConfig { conntrack_entries: total as u32 + 1024, ..Default::default() });
        let mut now = 1_795_305_600_000_000_000u64;
        results.push(run(&mut p, &tables, &input, total, Expect::Forward, &mut now));
    }
    median(results)
}

fn nacl_deny(cfg: &Config, total: usize, runs: usize) -> Result {
    let tables = tables_for(cfg);
    let inet = tables.port_by_name("inet").unwrap();
    let server = bc::server();
    let frames = (0..256u32)
        .map(|i| testkit::tcp(&bc::attacker(i), server.ip, router(), 20_000 + i as u16, 443, Flags::SYN, 1, 0, &[0; 6]))
        .collect();
    let input = Frames { port: inet, frames };
    let mut results = Vec::new();
    for _ in 0..runs {
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut now = 1_795_305_600_000_000_000u64;
        results.push(run(&mut p, &tables, &input, total, Expect::Reject(Hop::NaclIngress), &mut now));
    }
    median(results)
}

/// Raw classifier lookups per second against the ENI's inbound rules.
fn classifier_lookups(cfg: &Config, filters: &[classbench::Filter], runs: usize) -> (f64, usize) {
    let tables = tables_for(cfg);
    let eni = tables.eni_by_name(bc::SERVER_ENI).unwrap();
    let sg = &eni.sg_ingress;
    let mut rng = bc::rng(11);
    let keys: Vec<(u8, u16, u128)> = (0..1 << 16)
        .map(|_| {
            let f = &filters[rng.gen_range(0..filters.len())];
            let host_bits = 32 - f.src_len as u32;
            let noise = if host_bits == 0 { 0 } else { rng.gen::<u32>() & (u32::MAX >> (32 - host_bits)) };
            let proto = f.proto.unwrap_or(6);
            (proto, rng.gen_range(f.dport_lo..=f.dport_hi), (f.src | noise) as u128)
        })
        .collect();
    let mut rates = Vec::new();
    let mut hits = 0;
    for _ in 0..runs {
        let n = 4_000_000;
        let start = Instant::now();
        hits = 0;
        for i in 0..n {
            let (proto, key, addr) = keys[i & 0xffff];
            hits += sg.judge(Family::V4, proto, key, addr).is_some() as usize;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    assert!(hits > 0);
    (rates[rates.len() / 2], sg.match_count())
}

fn classbench_new_flows(filters: &[classbench::Filter], count: usize) -> Vec<Vec<u8>> {
    let mut rng = bc::rng(7);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let f = &filters[rng.gen_range(0..filters.len())];
        let sport = 1024 + (out.len() % 60_000) as u16;
        if let Some(frame) = bc::packet_for(f, &mut rng, sport) {
            out.push(frame);
        }
    }
    out
}

fn quota_new_flows(count: usize) -> Vec<Vec<u8>> {
    let server = bc::server();
    (0..count as u32)
        .map(|i| {
            testkit::tcp(
                &bc::client(i),
                server.ip,
                router(),
                1024 + (i / 65_280) as u16,
                443,
                Flags::SYN,
                1,
                0,
                &[0; 6],
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let total = if quick { 1 << 18 } else { 1 << 23 };
    let new_count = if quick { 1 << 16 } else { 1 << 20 };

    println!("| config | traffic | Mpps (median of {runs}) | ns/frame p50 | ns/frame p99 |");
    println!("|---|---|---|---|---|");
    let row = |cfg: &str, traffic: &str, r: &Result| {
        println!("| {cfg} | {traffic} | {:.2} | {} | {} |", r.mpps, r.p50_ns, r.p99_ns)
    };

    let quota = bc::quota_config();
    // One case alone, long enough for a profiler (callgrind, perf record).
    if args.iter().any(|a| a == "--profile-established") {
        row("AWS quotas", "(a) established", &established(&quota, 4096, total * 8, 1));
        return;
    }
    if args.iter().any(|a| a == "--profile-deny") {
        row("AWS quotas", "(c) NACL deny", &nacl_deny(&quota, total * 8, 1));
        return;
    }
    row(
        "AWS quotas (5 SGs x 60 rules, 20-entry NACL)",
        "(a) established, 4096 flows",
        &established(&quota, 4096, total, runs),
    );
    row("AWS quotas", "(b) new flows (SYN, 1 entry each)", &new_flows(&quota, quota_new_flows(new_count), runs));
    row("AWS quotas", "(c) NACL deny", &nacl_deny(&quota, total, runs));
    if args.iter().any(|a| a == "--quota-only") {
        return;
    }

    let mut lookups = Vec::new();
    for set in ["acl1_10k", "fw1_10k"] {
        let filters = classbench::load(set).unwrap_or_else(|e| panic!("{e}"));
        let (cfg, kept) = bc::classbench_config(&filters);
        let label = format!("ClassBench {set} ({} rules as one SG)", kept.len());
        row(&label, "(a) established, 4096 flows", &established(&with_https(cfg.clone()), 4096, total, runs));
        row(
            &label,
            "(b) new flows matching random rules",
            &new_flows(&cfg, classbench_new_flows(&kept, new_count), runs),
        );
        lookups.push((set, classifier_lookups(&cfg, &kept, runs)));
    }
    println!();
    println!("| rule set | classifier entries | lookups/s (M, median of {runs}) |");
    println!("|---|---|---|");
    for (set, (rate, entries)) in lookups {
        println!("| {set} | {entries} | {rate:.2} |");
    }
}

/// Adds the clients' tcp/443 rule so established flows can be opened.
fn with_https(mut cfg: Config) -> Config {
    let perm: mgmt::model::IpPermission =
        serde_json::from_value(serde_json::json!({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "198.19.0.0/16"}]}))
            .unwrap();
    cfg.security_groups[0].ip_permissions.push(perm);
    cfg
}
