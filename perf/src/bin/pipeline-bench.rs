//! Single-core pipeline benchmark, in memory (no NIC): Mpps and ns/frame for
//! established flows, new flows and NACL denies, with an AWS-quota config and with
//! ClassBench 10k filter sets as one ENI's security group; and raw classifier
//! lookups/s. Frames are copied into the batch buffers before every batch (as a NIC
//! would have written them), and that copy is part of the measured time.
//!
//! `cargo run --release -p perf --bin pipeline-bench [-- --runs 5 --quick --quota-only]`
//! Prints a markdown table (medians of the runs) for BENCHMARKS.md. `--flow-cache N`
//! sizes every pipeline's flow cache (0: off), to compare the paths side by side.
//!
//! `--flowlog-cost` measures instead what flow-log accounting costs: the same three
//! traffic cases with the server ENI under a flow log (TrafficType ALL) and without,
//! the two legs run side by side in turns of `--turn-ms N` (default 20 ms), so the
//! machine's changes of speed fall on both alike. Both run on the wall clock, as
//! a worker does, so accounting intervals end during the run; finished records are
//! handed to a bounded channel exactly as the worker hands them to the flow-log
//! thread (a second thread, on another core as in the daemon, makes the records and
//! gives the emptied vectors back), and the last interval is flushed and handed on
//! inside the timed region, so every accounted packet's record is paid for.
//! `--verbose` prints every round.
//! `--flowlog-interval S` (default 1, the most flushes) sets the flow log's
//! aggregation interval. `--flush-cost` times one interval flush of (b)'s million
//! new flows alone, per record, into fresh memory and into a vector given back.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::accounting::FinishedFlow;
use dataplane::worker::RecordHandoff;

use dataplane::addr::Family;
use dataplane::pipeline::{Frame, Hop, Outcome, Pipeline, PipelineConfig, Verdict};
use dataplane::tables::Tables;
use dataplane::testkit::{self, Flags};
use hdrhistogram::Histogram;
use mgmt::compile::compile_once;
use mgmt::dataplane_host::{record_channels, RecordInbox, RecordLink};
use mgmt::model::Config;
use mgmt::validate::check;
use perf::bench_config::{self as bc, router};
use perf::classbench;
use perf::tool;
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
    /// Flow records handed on (flow-log runs).
    records: u64,
    /// Share of the measured frames carried out from the flow cache.
    cache_hits: f64,
}

/// How a run keeps time and what it does with flow records.
enum Mode<'a> {
    /// 1 us of appliance time per batch; records (if any) stay in the pipeline.
    Simulated,
    /// Appliance time is `base` plus the wall time since the run started (as a
    /// worker's clock); finished records go through a [`RecordHandoff`] into
    /// `records`, and the last interval is flushed and handed on before the clock
    /// stops. `spare` carries the emptied flows vector the pipeline holds from run
    /// to run: a worker keeps one pipeline, so its spare stays in circulation,
    /// and a run with a new pipeline must not flush into fresh memory for want of it.
    Worker { base: u64, link: &'a RecordLink, spare: &'a RefCell<Vec<FinishedFlow>> },
}

/// Flow-cache size for every pipeline of the run (`--flow-cache N`; 0 turns it off).
static FLOW_CACHE_ENTRIES: AtomicUsize = AtomicUsize::new(usize::MAX);

fn pipeline(conntrack_entries: u32) -> Pipeline {
    let mut cfg = PipelineConfig { conntrack_entries, ..Default::default() };
    match FLOW_CACHE_ENTRIES.load(Ordering::Relaxed) {
        usize::MAX => {}
        n => cfg.flow_cache_entries = n,
    }
    Pipeline::new(cfg)
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
    mode: &Mode<'_>,
) -> Result {
    let mut leg = Leg::new(pipeline, tables, input, expect, mode, *now, Instant::now());
    while leg.done < total {
        leg.batch();
    }
    let clock = leg.now;
    let r = leg.finish();
    *now = clock;
    r
}

/// One pipeline fed batch by batch and timed: what [`run`] loops over, and each of
/// the two legs `--flowlog-cost` runs side by side.
struct Leg<'a> {
    pipeline: &'a mut Pipeline,
    tables: &'a Tables,
    input: &'a Frames,
    expect: Expect,
    mode: &'a Mode<'a>,
    /// Where a worker's clock starts (the same for legs run side by side).
    start: Instant,
    now: u64,
    next: usize,
    done: usize,
    /// Time in this leg's batches, hand-offs and last flush.
    busy: Duration,
    handoff: RecordHandoff,
    bufs: Vec<Vec<u8>>,
    out: [Outcome; BATCH],
    hist: Histogram<u64>,
    hits_before: u64,
}

impl<'a> Leg<'a> {
    fn new(
        pipeline: &'a mut Pipeline,
        tables: &'a Tables,
        input: &'a Frames,
        expect: Expect,
        mode: &'a Mode<'a>,
        now: u64,
        start: Instant,
    ) -> Leg<'a> {
        if let Mode::Worker { spare, .. } = mode {
            pipeline.recycle_flows(spare.take());
        }
        Leg {
            hits_before: pipeline.stats.flow_cache_hits,
            pipeline,
            tables,
            input,
            expect,
            mode,
            start,
            now,
            next: 0,
            done: 0,
            busy: Duration::ZERO,
            handoff: RecordHandoff::default(),
            bufs: vec![vec![0u8; BUF]; BATCH],
            out: [Outcome { verdict: Verdict::Reply, head: 0, len: 0 }; BATCH],
            hist: Histogram::<u64>::new(3).unwrap(),
        }
    }

    /// One batch: copied in, processed, checked, and (as a worker) its records
    /// handed on.
    fn batch(&mut self) {
        let t0 = Instant::now();
        if let Mode::Worker { base, .. } = self.mode {
            self.now = base + (t0 - self.start).as_nanos() as u64;
        }
        let mut frames: Vec<Frame<'_>> = Vec::with_capacity(BATCH);
        // Locals, not fields, in the loop: after every copy the compiler would reload
        // the fields (callgrind: 17 instructions a frame for this loop, now 12).
        let (input, now, mut next) = (self.input, self.now, self.next);
        for buf in self.bufs.iter_mut() {
            let f = &input.frames[next % input.frames.len()];
            next += 1;
            buf[..f.len()].copy_from_slice(f);
            frames.push(Frame { buf, len: f.len(), port: input.port, time: now });
        }
        self.next = next;
        self.pipeline.process(self.tables, &mut frames, &mut self.out);
        let ns = t0.elapsed().as_nanos() as u64;
        self.hist.record((ns / BATCH as u64).max(1)).ok();
        let right = self.out.iter().all(|o| match self.expect {
            Expect::Forward => matches!(o.verdict, Verdict::Forward(_)),
            Expect::Reject(h) => o.verdict == Verdict::Reject(h),
        });
        assert!(
            right,
            "benchmark traffic took the wrong path: {:?}",
            self.out.iter().find(|o| o.verdict.name() != "forward")
        );
        self.done += BATCH;
        match self.mode {
            Mode::Simulated => self.now += 1_000, // 1 us per batch of appliance time
            Mode::Worker { link, .. } => {
                // What the worker loop does after every batch.
                self.handoff.pass(self.pipeline, |r| link.send(r));
                self.pipeline.restock_flows(|| link.spare());
            }
        }
        self.busy += t0.elapsed();
    }

    /// Ends the leg (as a worker, the open interval is flushed and handed on, inside
    /// the timed region) and returns its figures.
    fn finish(mut self) -> Result {
        if let Mode::Worker { link, spare, .. } = self.mode {
            // What a stopping worker does.
            let t0 = Instant::now();
            self.pipeline.flush_accounting(self.tables, self.now);
            self.handoff.pass(self.pipeline, |r| link.send(r));
            self.busy += t0.elapsed();
            assert_eq!(self.handoff.lost, 0, "the flow-log channel could not take the records: SKIPDATA");
            *spare.borrow_mut() = self.pipeline.take_spare_flows();
        }
        Result {
            mpps: self.done as f64 / self.busy.as_secs_f64() / 1e6,
            p50_ns: self.hist.value_at_quantile(0.5),
            p99_ns: self.hist.value_at_quantile(0.99),
            records: self.handoff.sent,
            cache_hits: (self.pipeline.stats.flow_cache_hits - self.hits_before) as f64 / self.done as f64,
        }
    }
}

/// How long a leg runs before the other takes its turn, in milliseconds
/// (`--turn-ms N`): long enough that refilling a leg's working set after the other's
/// turn is a small part of it, short enough that the VM's changes of speed, seconds
/// apart, fall on both legs alike. In time rather than batches, so every case
/// alternates at the same pace (a turn of new flows is 10 times fewer frames than
/// one of NACL denies).
static TURN_MS: AtomicUsize = AtomicUsize::new(20);

/// Runs two legs side by side until each has processed `total` frames: a turn of
/// one, then of the other (which goes first alternates). A change of
/// the machine's speed (this VM's come every few seconds) then falls on both legs
/// alike, where legs run one after the other would each catch a different speed.
fn side_by_side(mut legs: [Leg<'_>; 2], total: usize) -> [Result; 2] {
    let turn = Duration::from_millis(TURN_MS.load(Ordering::Relaxed) as u64);
    let mut first = 0;
    while legs.iter().any(|l| l.done < total) {
        for k in [first, 1 - first] {
            let until = Instant::now() + turn;
            while legs[k].done < total && Instant::now() < until {
                legs[k].batch();
            }
        }
        first = 1 - first;
    }
    legs.map(Leg::finish)
}

fn median(mut v: Vec<Result>) -> Result {
    v.sort_by(|a, b| a.mpps.total_cmp(&b.mpps));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

/// The appliance clock at the start of every run.
const EPOCH: u64 = 1_795_305_600_000_000_000;

fn established(cfg: &Config, flows: u32, total: usize, runs: usize) -> Result {
    let tables = tables_for(cfg);
    median((0..runs).map(|_| established_once(&tables, flows, total, &Mode::Simulated)).collect())
}

fn established_once(tables: &Tables, flows: u32, total: usize, mode: &Mode<'_>) -> Result {
    let mut p = established_pipeline(tables, flows);
    let mut now = EPOCH;
    run(&mut p, tables, &established_frames(tables, flows), total, Expect::Forward, &mut now, mode)
}

/// A pipeline in which `flows` TCP connections were opened with a real handshake.
fn established_pipeline(tables: &Tables, flows: u32) -> Pipeline {
    let inet = tables.port_by_name("inet").unwrap();
    let mut p = pipeline(flows * 2 + 1024);
    let server = bc::server();
    let server_port = tables.port_by_name("server").unwrap();
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
        let o = p.process_frame(tables, &mut Frame { buf: &mut buf, len: f.len(), port: *port, time: EPOCH }, &mut ());
        assert_eq!(o.verdict.name(), "forward");
    }
    p
}

/// One data segment on each of [`established_pipeline`]'s connections.
fn established_frames(tables: &Tables, flows: u32) -> Frames {
    let server = bc::server();
    let frames = (0..flows)
        .map(|i| {
            let sport = 10_000 + (i % 50_000) as u16;
            testkit::tcp(&bc::client(i), server.ip, router(), sport, 443, Flags::ACK, 2, 2, &[0; 6])
        })
        .collect();
    Frames { port: tables.port_by_name("inet").unwrap(), frames }
}

fn new_flows(cfg: &Config, frames: Vec<Vec<u8>>, runs: usize) -> Result {
    let tables = tables_for(cfg);
    let input = Frames { port: tables.port_by_name("inet").unwrap(), frames };
    median((0..runs).map(|_| new_flows_once(&tables, &input, &Mode::Simulated)).collect())
}

fn new_flows_once(tables: &Tables, input: &Frames, mode: &Mode<'_>) -> Result {
    let mut p = new_flows_pipeline(input);
    let mut now = EPOCH;
    run(&mut p, tables, input, whole_batches(input), Expect::Forward, &mut now, mode)
}

/// The frames of `input` that fill whole batches: (b) sends each new flow once.
fn whole_batches(input: &Frames) -> usize {
    input.frames.len() / BATCH * BATCH
}

/// A pipeline with room for a conntrack entry per new flow of `input`.
fn new_flows_pipeline(input: &Frames) -> Pipeline {
    pipeline(whole_batches(input) as u32 + 1024)
}

/// SYNs from 256 refused sources, each from `ports_each` source ports in turn.
fn deny_frames(tables: &Tables, ports_each: u32) -> Frames {
    let server = bc::server();
    let frames = (0..256 * ports_each)
        .map(|i| {
            let sport = 20_000u16.wrapping_add(i as u16);
            testkit::tcp(&bc::attacker(i % 256), server.ip, router(), sport, 443, Flags::SYN, 1, 0, &[0; 6])
        })
        .collect();
    Frames { port: tables.port_by_name("inet").unwrap(), frames }
}

fn nacl_deny(cfg: &Config, total: usize, runs: usize, ports_each: u32) -> Result {
    let tables = tables_for(cfg);
    let input = deny_frames(&tables, ports_each);
    median((0..runs).map(|_| nacl_deny_once(&tables, &input, total, &Mode::Simulated)).collect())
}

fn nacl_deny_once(tables: &Tables, input: &Frames, total: usize, mode: &Mode<'_>) -> Result {
    let mut p = deny_pipeline();
    let mut now = EPOCH;
    run(&mut p, tables, input, total, Expect::Reject(Hop::NaclIngress), &mut now, mode)
}

/// The pipeline NACL denies run through: the default conntrack (a refusal opens none).
fn deny_pipeline() -> Pipeline {
    pipeline(PipelineConfig::default().conntrack_entries)
}

fn median_of(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What the flow-log thread does with the batches, short of aggregating and
/// writing: makes every record and gives the emptied vectors back. Returns how many
/// records it made.
fn flowlog_side(inbox: RecordInbox) -> usize {
    let mut made = 0;
    while let Some(batch) = inbox.recv() {
        batch.for_each_chunk(4096, |records| made += records.len());
        inbox.give_back(batch);
    }
    made
}

/// Pins the bench to the core it runs on, and returns that core. The thread that
/// stands in for the flow-log thread then moves to another core with
/// [`tool::pin_elsewhere`], as a daemon runs the flow-log thread beside its workers:
/// what that thread does with the records (dropping a million of them an interval)
/// is not the pipeline's time.
fn pin_bench() -> usize {
    let core = tool::current_core();
    tool::pin(core).ok();
    core
}

/// One traffic case of `--flowlog-cost`.
struct CostCase<'a> {
    name: &'static str,
    input: &'a Frames,
    total: usize,
    expect: Expect,
    /// The pipeline a round starts from, under the given tables.
    pipeline: Box<dyn Fn(&Tables) -> Pipeline + 'a>,
}

/// Flow-log accounting's cost: each case with and without a flow log on the server
/// ENI, the two legs run side by side ([`side_by_side`]) on the same traffic and the
/// same clock. Each leg hands its records to its own flow-log side, as a worker does.
fn flowlog_cost(runs: usize, total: usize, new_count: usize, interval: u32, verbose: bool) {
    let plain = tables_for(&bc::quota_config());
    let logged = tables_for(&bc::with_flow_log(bc::quota_config(), interval, "bench"));
    let server = plain.eni_by_name(bc::SERVER_ENI).unwrap();
    assert!(server.flow_meta.is_none(), "the plain config has no flow log");
    let server = logged.eni_by_name(bc::SERVER_ENI).unwrap();
    assert!(server.flow_meta.is_some() && logged.flow_interval_secs == interval, "the server ENI is flow-logged");

    // The flow-log thread's side of the logged leg's channel: takes every batch,
    // counts, drops. The plain leg's channel never carries a batch.
    let (logged_link, logged_inbox) = record_channels();
    let (plain_link, plain_inbox) = record_channels();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let bench_core = pin_bench();
    let drain = std::thread::spawn(move || {
        let core = tool::pin_elsewhere(bench_core);
        counter.fetch_add(flowlog_side(logged_inbox) as u64, Ordering::Relaxed);
        core
    });
    let (plain_spare, logged_spare) = (RefCell::default(), RefCell::default());
    let plain_mode = Mode::Worker { base: EPOCH, link: &plain_link, spare: &plain_spare };
    let logged_mode = Mode::Worker { base: EPOCH, link: &logged_link, spare: &logged_spare };

    let established = established_frames(&plain, 4096);
    let new_frames = Frames { port: plain.port_by_name("inet").unwrap(), frames: quota_new_flows(new_count) };
    let deny = deny_frames(&plain, 1);
    let cases = [
        CostCase {
            name: "(a) established, 4096 flows",
            input: &established,
            total,
            expect: Expect::Forward,
            pipeline: Box::new(|t: &Tables| established_pipeline(t, 4096)),
        },
        CostCase {
            name: "(b) new flows (SYN, 1 entry each)",
            input: &new_frames,
            total: whole_batches(&new_frames),
            expect: Expect::Forward,
            pipeline: Box::new(|_: &Tables| new_flows_pipeline(&new_frames)),
        },
        CostCase {
            name: "(c) NACL deny (REJECT records)",
            input: &deny,
            total,
            expect: Expect::Reject(Hop::NaclIngress),
            pipeline: Box::new(|_: &Tables| deny_pipeline()),
        },
    ];
    println!(
        "| traffic (AWS quotas config) | Mpps without flow log | Mpps with flow log (ALL) | time added per packet (median of rounds) | lowest – highest round | records/round with | ns/frame p50 without / with |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let mut rounds = Vec::new();
        // Round 0 is not measured: a worker's first interval is flushed into fresh
        // memory, every later one into a vector the flow-log thread gave back.
        for r in 0..=runs {
            let (mut without, mut with) = ((case.pipeline)(&plain), (case.pipeline)(&logged));
            let start = Instant::now();
            let [without, with] = side_by_side(
                [
                    Leg::new(&mut without, &plain, case.input, case.expect, &plain_mode, EPOCH, start),
                    Leg::new(&mut with, &logged, case.input, case.expect, &logged_mode, EPOCH, start),
                ],
                case.total,
            );
            assert_eq!(without.records, 0, "{}: the leg without flow logs produced records", case.name);
            assert!(with.records > 0, "{}: the flow-logged leg produced no records", case.name);
            if verbose {
                eprintln!(
                    "{}, round {r}: {:.3} / {:.3} Mpps, p50 {} / {} ns, {:+.1}%",
                    case.name,
                    without.mpps,
                    with.mpps,
                    without.p50_ns,
                    with.p50_ns,
                    100.0 * (without.mpps / with.mpps - 1.0)
                );
            }
            if r > 0 {
                rounds.push((without, with));
            }
        }
        let of = |f: &dyn Fn(&(Result, Result)) -> f64| median_of(&rounds.iter().map(f).collect::<Vec<_>>());
        let added: Vec<f64> = rounds.iter().map(|(o, w)| 100.0 * (o.mpps / w.mpps - 1.0)).collect();
        let (lo, hi) = added.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "| {} | {:.2} | {:.2} | {:.1}% | {lo:.1}% – {hi:.1}% | {:.0} | {:.0} / {:.0} |",
            case.name,
            of(&|(o, _)| o.mpps),
            of(&|(_, w)| w.mpps),
            median_of(&added),
            of(&|(_, w)| w.records as f64),
            of(&|(o, _)| o.p50_ns as f64),
            of(&|(_, w)| w.p50_ns as f64),
        );
    }
    drop(cases);
    drop((logged_link, plain_link, plain_inbox));
    let drain_core = drain.join().expect("drain thread");
    println!();
    println!(
        "{runs} rounds (after one not measured), each running both legs side by side, {} ms at a time; flow-log aggregation interval {interval} s; {} records received by the flow-log side (on core {}; the bench on core {bench_core}).",
        TURN_MS.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        drain_core.map_or("the same".to_string(), |c| c.to_string()),
    );
}

/// The interval flush alone, per record: (b)'s new flows are accounted on the
/// simulated clock (no flush during the run), then one flush ends the interval,
/// into a fresh vector and into one given back by the flow-log side, alternated.
/// Also times what the flow-log thread then does: making the records.
fn flush_cost(runs: usize, new_count: usize, interval: u32) {
    let tables = tables_for(&bc::with_flow_log(bc::quota_config(), interval, "bench"));
    let frames = Frames { port: tables.port_by_name("inet").unwrap(), frames: quota_new_flows(new_count) };
    let mut spare = None;
    let (mut fresh, mut recycled, mut making) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..2 * runs {
        let mut p = pipeline(new_count as u32 + 1024);
        let mut now = EPOCH;
        run(&mut p, &tables, &frames, new_count, Expect::Forward, &mut now, &Mode::Simulated);
        let reuse = r % 2 == 1;
        if let (true, Some(v)) = (reuse, spare.take()) {
            p.recycle_flows(v);
        }
        let t = Instant::now();
        p.flush_accounting(&tables, now);
        let flush = t.elapsed().as_nanos() as f64;
        let batch = p.take_records();
        let n = batch.len() as f64;
        assert_eq!(batch.flows.len(), new_count, "one flow record per new flow");
        let t = Instant::now();
        let mut made = 0;
        batch.for_each_chunk(4096, |records| made += records.len());
        making.push(t.elapsed().as_nanos() as f64 / made as f64);
        if reuse { &mut recycled } else { &mut fresh }.push(flush / n);
        spare = Some(batch.into_spare());
    }
    println!("| flush, fresh vector | flush, vector given back | making the records (flow-log thread) |");
    println!("|---|---|---|");
    println!(
        "| {:.1} ns/record | {:.1} ns/record | {:.1} ns/record |",
        median_of(&fresh),
        median_of(&recycled),
        median_of(&making)
    );
    println!();
    println!("{new_count} new flows per flush, {runs} flushes of each kind, alternated (medians).");
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
    if let Some(n) = args.iter().position(|a| a == "--turn-ms").and_then(|i| args.get(i + 1)) {
        TURN_MS.store(n.parse().expect("--turn-ms N"), Ordering::Relaxed);
    }
    if let Some(n) = args.iter().position(|a| a == "--flow-cache").and_then(|i| args.get(i + 1)) {
        FLOW_CACHE_ENTRIES.store(n.parse().expect("--flow-cache N"), Ordering::Relaxed);
    }

    let interval = args
        .iter()
        .position(|a| a == "--flowlog-interval")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if args.iter().any(|a| a == "--flush-cost") {
        flush_cost(runs, new_count, interval);
        return;
    }
    if args.iter().any(|a| a == "--flowlog-cost") {
        flowlog_cost(runs, total, new_count, interval, args.iter().any(|a| a == "--verbose"));
        return;
    }
    // One flow-log cost case alone, for a profiler: `--profile-flowlog a|b|c [--without]`.
    if let Some(case) = args.iter().position(|a| a == "--profile-flowlog").and_then(|i| args.get(i + 1)) {
        let cfg = if args.iter().any(|a| a == "--without") {
            bc::quota_config()
        } else {
            bc::with_flow_log(bc::quota_config(), interval, "bench")
        };
        let tables = tables_for(&cfg);
        let (link, inbox) = record_channels();
        let bench_core = pin_bench();
        let drain = std::thread::spawn(move || {
            tool::pin_elsewhere(bench_core);
            flowlog_side(inbox)
        });
        let spare = RefCell::default();
        let mode = Mode::Worker { base: EPOCH, link: &link, spare: &spare };
        let r = match case.as_str() {
            "a" => established_once(&tables, 4096, total, &mode),
            "b" => new_flows_once(
                &tables,
                &Frames { port: tables.port_by_name("inet").unwrap(), frames: quota_new_flows(new_count) },
                &mode,
            ),
            _ => nacl_deny_once(&tables, &deny_frames(&tables, 1), total, &mode),
        };
        drop(link);
        println!("{:.2} Mpps, {} records", r.mpps, drain.join().unwrap());
        return;
    }

    println!("| config | traffic | Mpps (median of {runs}) | ns/frame p50 | ns/frame p99 | flow-cache hits |");
    println!("|---|---|---|---|---|---|");
    let row = |cfg: &str, traffic: &str, r: &Result| {
        println!("| {cfg} | {traffic} | {:.2} | {} | {} | {:.1}% |", r.mpps, r.p50_ns, r.p99_ns, r.cache_hits * 100.0)
    };

    let quota = bc::quota_config();
    // One case alone, long enough for a profiler (callgrind, perf record).
    if args.iter().any(|a| a == "--profile-established") {
        row("AWS quotas", "(a) established", &established(&quota, 4096, total * 8, 1));
        return;
    }
    if args.iter().any(|a| a == "--profile-new") {
        row("AWS quotas", "(b) new flows", &new_flows(&quota, quota_new_flows(new_count * 4), 1));
        return;
    }
    if args.iter().any(|a| a == "--profile-deny") {
        row("AWS quotas", "(c) NACL deny", &nacl_deny(&quota, total * 8, 1, 1));
        return;
    }
    if args.iter().any(|a| a == "--profile-deny-misses") {
        row("AWS quotas", "NACL deny, 65,536 5-tuples", &nacl_deny(&quota, total * 8, 1, 256));
        return;
    }
    row(
        "AWS quotas (5 SGs x 60 rules, 20-entry NACL)",
        "(a) established, 4096 flows",
        &established(&quota, 4096, total, runs),
    );
    row("AWS quotas", "(b) new flows (SYN, 1 entry each)", &new_flows(&quota, quota_new_flows(new_count), runs));
    row("AWS quotas", "(c) NACL deny", &nacl_deny(&quota, total, runs, 1));
    row("AWS quotas", "NACL deny, 65,536 5-tuples in turn (flow-cache misses)", &nacl_deny(&quota, total, runs, 256));
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
