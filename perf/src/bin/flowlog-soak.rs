//! Flow logs at a sustained record rate, through the daemon's own path: a real
//! worker loop (`run_worker`, a `Pipeline` accounting packets of established TCP
//! flows at a flow-logged ENI) hands each interval's records over the daemon's
//! bounded channel (1024 batches, `try_send`, SKIPDATA on a full channel) to the
//! daemon's flow-log thread (`flowlog_thread`: the real `Aggregator` and the real
//! S3-directory sink writing gzip text files to disk). Only the NIC is replaced: an
//! in-memory port set hands the worker one packet per flow per interval, paced on
//! the wall clock.
//!
//! `cargo run --release -p perf --bin flowlog-soak -- [--rate 100000] [--secs 60]
//!  [--interval 1] [--root DIR] [--keep]`
//!
//! Records per second = flows / interval: `--rate` flows each send one packet per
//! `--interval` seconds (the flow log's MaxAggregationInterval; the workers account
//! over the same interval), so every interval ends with `rate x interval` records.
//! Reports SKIPDATA (worker side and in the files), the flow-log thread's CPU time,
//! the deepest the channel got, and the files written; every file is read back and
//! its records counted. Exits 1 if anything was skipped or a sink failed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::bounded;
use dataplane::accounting::{FinishedFlow, RecordBatch};
use dataplane::conntrack::Nanos;
use dataplane::pipeline::{Pipeline, PipelineConfig};
use dataplane::port::mem::MemIo;
use dataplane::port::{FrameHandle, Io, RxFrame};
use dataplane::tables::{PortId, Tables};
use dataplane::testkit::{self, Flags};
use dataplane::worker::{run_worker, Mesh, Poll, WorkerConfig, WorkerHost, WorkerTelemetry};
use mgmt::compile::compile_once;
use mgmt::daemon::Shared;
use mgmt::dataplane_host::{record_channels, RecordLink};
use mgmt::stats::{FlowLogCounters, StatsBoard};
use mgmt::validate::{check, Checked};
use perf::bench_config::{self as bc, router};

struct Args {
    rate: u32,
    secs: u64,
    interval: u32,
    root: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { rate: 100_000, secs: 60, interval: 1, root: None, keep: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            a.keep = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--rate" => a.rate = value.parse().map_err(bad)?,
            "--secs" => a.secs = value.parse().map_err(bad)?,
            "--interval" => a.interval = value.parse().map_err(bad)?,
            "--root" => a.root = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.rate == 0 || a.secs == 0 || !(1..=600).contains(&a.interval) {
        return Err("--rate and --secs must be positive, --interval 1..600".into());
    }
    Ok(a)
}

fn wall_nanos() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as Nanos
}

/// The in-memory NIC: first every flow's handshake as fast as the worker takes it,
/// then one data packet per flow per interval, paced on the wall clock.
struct PacedIo {
    mem: MemIo,
    handshake: VecDeque<(PortId, Vec<u8>)>,
    data: Vec<Vec<u8>>,
    inet: PortId,
    pps: f64,
    paced_from: Option<Instant>,
    sent: u64,
}

impl Io for PacedIo {
    fn rx(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize {
        if !self.handshake.is_empty() {
            while let Some((port, f)) = self.handshake.pop_front() {
                if !self.mem.inject(port, &f) {
                    self.handshake.push_front((port, f));
                    break;
                }
            }
        } else {
            let from = *self.paced_from.get_or_insert_with(Instant::now);
            let due = (from.elapsed().as_secs_f64() * self.pps) as u64;
            while self.sent < due {
                let f = &self.data[(self.sent % self.data.len() as u64) as usize];
                if !self.mem.inject(self.inet, f) {
                    break;
                }
                self.sent += 1;
            }
        }
        self.mem.rx(out, max)
    }
    fn buffer(&mut self, h: FrameHandle) -> &mut [u8] {
        self.mem.buffer(h)
    }
    fn tx(&mut self, port: PortId, h: FrameHandle, head: usize, len: usize) {
        self.mem.tx(port, h, head, len)
    }
    fn release(&mut self, h: FrameHandle) {
        self.mem.release(h)
    }
    fn alloc(&mut self) -> Option<FrameHandle> {
        self.mem.alloc()
    }
    fn flush(&mut self) {}
}

/// The worker's view of the daemon, as `dataplane_host`'s: the channel is tried,
/// never waited on.
struct Host {
    tables: Arc<Tables>,
    stop: Arc<AtomicBool>,
    records: RecordLink,
}

impl WorkerHost for Host {
    fn tables(&self) -> Arc<Tables> {
        self.tables.clone()
    }
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn now(&self) -> Nanos {
        wall_nanos()
    }
    fn records(&mut self, records: RecordBatch) -> Result<(), RecordBatch> {
        self.records.send(records)
    }
    fn spare_flows(&mut self) -> Option<Vec<FinishedFlow>> {
        self.records.spare()
    }
    fn housekeeping(&mut self, _: &Tables, _: &mut Pipeline, _: &WorkerTelemetry) {}
}

/// A thread's time on a CPU so far (scheduler's account), by thread name.
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let s = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            return s.split_whitespace().next()?.parse().ok().map(Duration::from_nanos);
        }
    }
    None
}

#[derive(Default, Debug)]
struct FileCount {
    files: u64,
    bytes: u64,
    ok: u64,
    nodata: u64,
    skipdata: u64,
}

/// Reads every published file back and counts its records by log-status.
fn count_files(dir: &Path, c: &mut FileCount) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            count_files(&p, c);
        } else if p.to_string_lossy().ends_with(".log.gz") {
            c.files += 1;
            c.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            let f = std::fs::File::open(&p).expect("open a published file");
            let mut lines = BufReader::new(flate2::read::MultiGzDecoder::new(f)).lines();
            let header = lines.next().expect("header line").expect("gzip text");
            assert!(header.starts_with("version "), "{}: header {header:?}", p.display());
            for line in lines {
                let line = line.expect("gzip text");
                match line.rsplit(' ').next() {
                    Some("OK") => c.ok += 1,
                    Some("NODATA") => c.nodata += 1,
                    Some("SKIPDATA") => c.skipdata += 1,
                    other => panic!("{}: unexpected log-status {other:?}", p.display()),
                }
            }
        }
    }
}

fn flow_log_counters(board: &StatsBoard) -> FlowLogCounters {
    board.flow_logs.lock().expect("stats board").first().cloned().unwrap_or_default()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flowlog-soak: {e}");
            std::process::exit(2);
        }
    };
    let flows = (args.rate as u64 * args.interval as u64) as u32;
    let root =
        args.root.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("flowlog-soak-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("flow-log root");

    let cfg = bc::with_flow_log(bc::quota_config(), args.interval, "soak");
    let checked: Checked = check(&cfg).expect("soak config");
    let tables = Arc::new(compile_once(&checked));
    let inet = tables.port_by_name("inet").unwrap();
    let server_port = tables.port_by_name("server").unwrap();

    let server = bc::server();
    let mut handshake = VecDeque::new();
    let mut data = Vec::new();
    for i in 0..flows {
        let c = bc::client(i);
        let sport = 1024 + (i / 65_280) as u16;
        handshake.push_back((inet, testkit::tcp(&c, server.ip, router(), sport, 443, Flags::SYN, 1, 0, &[])));
        handshake
            .push_back((server_port, testkit::tcp(&server, c.ip, router(), 443, sport, Flags::SYN_ACK, 1, 2, &[])));
        handshake.push_back((inet, testkit::tcp(&c, server.ip, router(), sport, 443, Flags::ACK, 2, 2, &[])));
        data.push(testkit::tcp(&c, server.ip, router(), sport, 443, Flags::ACK, 2, 2, &[0; 64]));
    }
    let mut mem = MemIo::new(tables.ports.len(), 4096);
    mem.keep_sent = false;
    let io =
        PacedIo { mem, handshake, data, inet, pps: flows as f64 / args.interval as f64, paced_from: None, sent: 0 };

    // The daemon's wiring (dataplane_host::start): the same channel bounds.
    let (records_tx, records_rx) = record_channels();
    let (config_tx, config_rx) = bounded::<Checked>(16);
    let shared = Arc::new(Shared::new(ArcSwap::from(tables.clone()), 1, None));
    let flowlog = {
        let (checked, root, shared) = (checked.clone(), root.clone(), shared.clone());
        std::thread::Builder::new()
            .name("vpcgate-flowlog".into())
            .spawn(move || mgmt::dataplane_host::flowlog_thread(checked, root, records_rx, config_rx, shared))
            .expect("flow-log thread")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let host = Host { tables: tables.clone(), stop: stop.clone(), records: records_tx.clone() };
        let conntrack_entries = (flows * 2).max(1024);
        std::thread::Builder::new()
            .name("vpcgate-w0".into())
            .spawn(move || {
                let (mut io, mut host) = (io, host);
                let mut pipeline = Pipeline::new(PipelineConfig { conntrack_entries, ..PipelineConfig::default() });
                let cfg =
                    WorkerConfig { index: 0, batch: 64, poll: Poll::Adaptive, housekeeping: Duration::from_millis(5) };
                let t = run_worker(&mut io, &mut pipeline, &mut host, &Mesh::new(1, 64), &cfg);
                (t, io.sent, pipeline.stats.clone())
            })
            .expect("worker thread")
    };

    println!(
        "flowlog-soak: {flows} established flows x 1 packet per {} s = {} records/s for {} s, flow log TrafficType ALL, gzip text under {}",
        args.interval,
        args.rate,
        args.secs,
        root.display()
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let cpu_at_start = thread_cpu("vpcgate-flowlog").unwrap_or_default();
    let worker_cpu_at_start = thread_cpu("vpcgate-w0").unwrap_or_default();
    let mut deepest = 0;
    let mut last_report = Instant::now();
    let mut cpu = cpu_at_start;
    let mut worker_cpu = worker_cpu_at_start;
    while started.elapsed() < Duration::from_secs(args.secs) {
        std::thread::sleep(Duration::from_millis(100));
        deepest = deepest.max(records_tx.records.len());
        cpu = thread_cpu("vpcgate-flowlog").unwrap_or(cpu);
        worker_cpu = thread_cpu("vpcgate-w0").unwrap_or(worker_cpu);
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let el = started.elapsed().as_secs_f64();
            let c = flow_log_counters(&shared.stats);
            println!(
                "  {el:>5.1} s: flow-log thread {:.1}% of a core, channel {} batches (deepest {deepest}), files {} ({} records published so far)",
                100.0 * (cpu - cpu_at_start).as_secs_f64() / el,
                records_tx.records.len(),
                c.files,
                c.records_written
            );
        }
    }
    let wall = started.elapsed();
    let cpu_run = cpu - cpu_at_start;
    let worker_cpu_run = worker_cpu - worker_cpu_at_start;
    // Stop as the daemon does: workers hand over their last interval, then the
    // flow-log thread delivers everything still open.
    stop.store(true, Ordering::SeqCst);
    let (telemetry, packets, stats) = worker.join().expect("worker");
    drop(records_tx);
    let drained = Instant::now();
    let cpu_before_finish = thread_cpu("vpcgate-flowlog").unwrap_or(cpu);
    drop(config_tx);
    flowlog.join().expect("flow-log thread");
    let finish = drained.elapsed();
    let c = flow_log_counters(&shared.stats);
    let mut files = FileCount::default();
    count_files(&root, &mut files);

    let secs = wall.as_secs_f64();
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| packets the NIC stand-in received (handshakes + data) | {} |", packets + 3 * flows as u64);
    println!("| packets forwarded by the worker | {} |", stats.forwarded);
    println!(
        "| records handed to the flow-log thread | {} ({:.0}/s) |",
        telemetry.records_sent,
        telemetry.records_sent as f64 / secs
    );
    println!("| records the channel could not take (worker SKIPDATA) | {} |", telemetry.records_skipped);
    println!("| deepest channel backlog (batches of 1024) | {deepest} |");
    println!(
        "| flow-log thread CPU during the run | {:.2} s of {:.1} s = {:.1}% of a core |",
        cpu_run.as_secs_f64(),
        secs,
        100.0 * cpu_run.as_secs_f64() / secs
    );
    println!(
        "| worker CPU during the run (pipeline + accounting + hand-off, idle polls) | {:.1}% of a core |",
        100.0 * worker_cpu_run.as_secs_f64() / secs
    );
    println!(
        "| final delivery after stop (last windows, publish) | {:.2} s (flow-log CPU before it {:.2} s) |",
        finish.as_secs_f64(),
        cpu_before_finish.as_secs_f64()
    );
    println!(
        "| files written / bytes | {} / {} ({:.1} bytes/record) |",
        files.files,
        files.bytes,
        files.bytes as f64 / (files.ok + files.nodata + files.skipdata).max(1) as f64
    );
    println!("| records in the files: OK / NODATA / SKIPDATA | {} / {} / {} |", files.ok, files.nodata, files.skipdata);
    println!(
        "| DescribeStats FlowLogs: RecordsWritten / RecordsSkipped / Errors | {} / {} / {} |",
        c.records_written, c.records_skipped, c.errors
    );
    let mut failed = Vec::new();
    if telemetry.records_skipped > 0 || files.skipdata > 0 || c.records_skipped > 0 {
        failed.push("records were skipped (SKIPDATA)");
    }
    if c.errors > 0 {
        failed.push("the sink reported errors");
    }
    if files.ok != telemetry.records_sent {
        failed.push("the files do not hold every record the worker handed over");
    }
    if c.records_written != files.ok + files.nodata + files.skipdata {
        failed.push("RecordsWritten differs from the records in the files");
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    if failed.is_empty() {
        println!("\nflowlog-soak: OK: no SKIPDATA, every record in a published file");
    } else {
        println!("\nflowlog-soak: FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
