//! A flow-log sink that fails at run time, end to end: the daemon's flow-log thread
//! (`dataplane_host::flowlog_thread`, real Aggregator, real S3-directory sink) writes
//! to a 2 MiB tmpfs that is full. The failure must show in the stats DescribeStats
//! reports (Errors, LastError, RecordsSkipped), the side that feeds records (a
//! worker's non-blocking `try_send` into the daemon's bounded channel) must never
//! find the channel full or wait, and once space is freed records are written again.
//!
//! Needs root (mount); skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, TrySendError};
use dataplane::accounting::{self, Acct, FinishedFlow, FlowId, FlowMetas, RecordBatch};
use dataplane::addr::Family;
use mgmt::compile::compile_once;
use mgmt::daemon::Shared;
use mgmt::dataplane_host::{record_channels, RecordLink};
use mgmt::stats::{FlowLogCounters, StatsBoard};
use mgmt::validate::check;
use perf::bench_config as bc;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted for the test, unmounted when dropped (also on a failed assert).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn counters(board: &StatsBoard) -> FlowLogCounters {
    board.flow_logs.lock().unwrap().first().cloned().unwrap_or_default()
}

/// Hands `n` records of distinct flows (poorly compressible: many addresses and
/// ports) to the channel as a worker does; returns how many `try_send`s found it
/// full and the longest one took.
fn feed(tx: &RecordLink, metas: &FlowMetas, eni: dataplane::tables::EniId, seq: &mut u64, n: usize) -> (u64, Duration) {
    let now = now_s();
    let flows: Vec<FinishedFlow> = (0..n)
        .map(|_| {
            *seq += 1;
            let x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let id = FlowId {
                eni,
                egress: x & 1 == 0,
                accept: x & 2 == 0,
                to_uplink: true,
                family: Family::V4,
                proto: 6,
                src: u128::from(0xc613_0000u32 | (x >> 40) as u32 & 0xffff),
                dst: u128::from(0xc612_010au32),
                sport: (x >> 16) as u16,
                dport: (x >> 32) as u16,
            };
            let a = Acct {
                packets: 1 + (x >> 50),
                bytes: 40 + (x >> 44),
                first: now as u32,
                last: now as u32,
                tcp_flags: 2,
            };
            (id, a)
        })
        .collect();
    let t = Instant::now();
    let full = match tx.records.try_send(RecordBatch { metas: metas.clone(), flows, made: Vec::new() }) {
        Ok(()) => 0,
        Err(TrySendError::Full(_)) => 1,
        Err(TrySendError::Disconnected(_)) => panic!("the flow-log thread is gone"),
    };
    (full, t.elapsed())
}

fn published(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".log.gz") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_full_disk_is_reported_retried_and_never_blocks_the_feeder() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("vpcgate-flowlog-full-{}", std::process::id()));
    let Some(fs) = Tmpfs::mount(&dir, "2m") else {
        eprintln!("skipped: could not mount a tmpfs");
        return;
    };
    let root = fs.0.clone();

    let checked = check(&bc::with_flow_log(bc::quota_config(), 1, "full")).unwrap();
    let tables = Arc::new(compile_once(&checked));
    let eni_id = dataplane::tables::EniId(
        tables.enis.iter().position(|e| e.as_ref().is_some_and(|e| e.flow_meta.is_some())).unwrap() as u32,
    );
    let metas = accounting::flow_metas(&tables);
    assert!(tables.eni(eni_id).unwrap().flow_meta.is_some());

    let (tx, rx) = record_channels();
    let (config_tx, config_rx) = bounded(16);
    let shared = Arc::new(Shared::new(ArcSwap::from(tables.clone()), 1, None));
    let thread = {
        let (checked, root, shared) = (checked.clone(), root.clone(), shared.clone());
        std::thread::spawn(move || mgmt::dataplane_host::flowlog_thread(checked, root, rx, config_rx, shared))
    };

    // The flow log opens with room on the disk (an unwritable directory is refused
    // at configuration time instead): wait until its counters are on the board.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters(&shared.stats).flow_log_id.is_empty() {
        assert!(Instant::now() < deadline, "the flow-log thread did not publish its counters");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The disk is full (what is left of it taken by a filler file).
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }

    let (mut seq, mut full, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut step = |n| {
        let (f, t) = feed(&tx, &metas, eni_id, &mut seq, n);
        full += f;
        slowest = slowest.max(t);
    };
    // 20,000 records/s until the sink has met the full disk (its compressed output
    // reaches the file in 256 KiB writes), at most 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while counters(&shared.stats).errors == 0 && Instant::now() < deadline {
        step(2000);
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few more intervals while the disk stays full: every write is retried and fails.
    for _ in 0..20 {
        step(2000);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Quiet for 3 s: the windows holding fault-time records close (against the full
    // disk) before it is cleared, so what follows is about new records.
    std::thread::sleep(Duration::from_secs(3));
    let during = counters(&shared.stats);
    assert!(during.errors >= 1, "a full disk is counted: {during:?}");
    let last = during.last_error.clone().unwrap_or_default();
    assert!(last.contains("No space left on device"), "LastError says why: {last:?}");
    assert!(during.records_skipped > 0, "records lost to the full disk are counted: {during:?}");
    assert_eq!(during.records_written, 0, "nothing could be published: {during:?}");

    // Space again: records are written again.
    std::fs::remove_file(&filler).unwrap();
    let before = during.records_skipped;
    // Once the filler is gone the 2 MiB hold these and what the sink still buffered.
    let sent_after = 10 * 100;
    for _ in 0..10 {
        step(100);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The feeding side never waited and never found the channel full.
    assert_eq!(full, 0, "try_send found the channel full: the flow-log thread stalled");
    assert!(slowest < Duration::from_millis(50), "a try_send took {slowest:?}");
    drop(tx);
    drop(config_tx);
    thread.join().unwrap();
    let after = counters(&shared.stats);
    let files = published(&root);
    assert!(!files.is_empty(), "files are published again after the fault: {after:?}");
    // Records written after the fault: at least the ones fed after it (those of the
    // last interval before it may make it too, being in the same open window).
    assert!(after.records_written >= sent_after as u64, "{after:?}");
    let mut lines = 0;
    for f in &files {
        use std::io::BufRead;
        let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap()));
        lines += r.lines().count() as u64 - 1; // header
    }
    assert_eq!(lines, after.records_written, "RecordsWritten is what the files hold");
    // Every record fed is accounted for: in a published file, or counted as lost
    // (besides, at most one NODATA record per quiet one-second window).
    let total = after.records_written + after.records_skipped;
    assert!(total >= seq && total <= seq + 10, "{total} records for {seq} fed: {after:?}");
    assert!(after.records_skipped >= before);
    eprintln!("during the fault: {during:?}\nafter: {after:?}; {} file(s)", files.len());
}
