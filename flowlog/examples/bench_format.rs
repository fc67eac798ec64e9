//! Records per second for the default format: rendering alone, rendering into gzip
//! text files, and Parquet files, through the real S3-directory sink (temp dir).
//!
//! Usage: `cargo run --release -p flowlog --example bench_format -- [--records N]
//!         [--runs R] [--gzip-level L] [--only format|text|parquet]`
//! Prints the median of R runs (default 5) of N records (default 1,000,000).
//! `--only` runs one measurement, e.g. under a profiler.

mod common;

use std::time::Instant;

use flowlog::sink::{FileFormat, S3DirConfig, S3DirSink};
use flowlog::{FlowRecord, LogDestination, LogFormat, Sink};

/// 2024-04-01 00:00:00 UTC; every record ends within its first 5-minute window.
const WINDOW: u64 = 1_711_929_600;
const BATCH: usize = 10_000;

struct Args {
    records: usize,
    runs: usize,
    gzip_level: u32,
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        records: 1_000_000,
        runs: 5,
        only: None,
        gzip_level: S3DirConfig::new("", LogDestination::parse("arn:aws:s3:::bench").unwrap(), "fl-1").gzip_level,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--records" => a.records = value.parse().map_err(bad)?,
            "--runs" => a.runs = value.parse().map_err(bad)?,
            "--gzip-level" => a.gzip_level = value.parse().map_err(bad)?,
            "--only" if ["format", "text", "parquet"].contains(&value.as_str()) => a.only = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.records == 0 || a.runs == 0 {
        return Err("--records and --runs must be positive".into());
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// This thread's time on a CPU, from the scheduler's own account: unlike wall time,
/// it does not count the time other processes (parallel builds) took the core.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Records per wall-clock second and per CPU second of one run of `f`.
fn rate(records: &[FlowRecord], f: impl FnOnce(&[FlowRecord])) -> (f64, f64) {
    let (t, cpu) = (Instant::now(), thread_cpu_secs());
    f(records);
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu.zip(thread_cpu_secs()).map_or(wall, |(a, b)| b - a);
    let n = records.len() as f64;
    (n / wall, n / cpu)
}

fn report(name: &str, runs: Vec<(f64, f64)>, extra: &str) {
    let (wall, cpu): (Vec<f64>, Vec<f64>) = runs.into_iter().unzip();
    println!("{name:<20}{:>12.0} records/s wall {:>12.0} records/CPU-s{extra}", median(wall), median(cpu));
}

fn format_only(records: &[FlowRecord]) {
    let format = LogFormat::default();
    let mut out = Vec::with_capacity(1 << 20);
    for r in records {
        format.write_line(r, &mut out);
        if out.len() > (1 << 20) - 1024 {
            std::hint::black_box(&out);
            out.clear();
        }
    }
    std::hint::black_box(&out);
}

/// Writes through an S3-directory sink; returns the bytes of the files.
fn to_files(records: &[FlowRecord], file_format: FileFormat, gzip_level: u32) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = LogDestination::parse("arn:aws:s3:::bench").expect("valid ARN");
    let mut cfg = S3DirConfig::new(dir.path(), dest, "fl-0123456789abcdef0");
    cfg.file_format = file_format;
    cfg.gzip_level = gzip_level;
    let mut sink = S3DirSink::new(cfg).expect("valid config");
    for batch in records.chunks(BATCH) {
        sink.write(batch).expect("write");
    }
    sink.close().expect("close");
    sink.stats().bytes
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_format: {e}");
            std::process::exit(2);
        }
    };
    let mut records = common::many(args.records, WINDOW);
    for (i, r) in records.iter_mut().enumerate() {
        r.end = WINDOW + (i as u64 % 300);
        r.start = r.end.saturating_sub(i as u64 % 60);
    }
    let mut raw = Vec::new();
    let format = LogFormat::default();
    for r in &records {
        format.write_line(r, &mut raw);
    }
    println!(
        "{} records of the default format ({:.1} bytes/line), median of {} runs, gzip level {}",
        records.len(),
        raw.len() as f64 / records.len() as f64,
        args.runs,
        args.gzip_level
    );
    drop(raw);

    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if wanted("format") {
        let runs = (0..args.runs).map(|_| rate(&records, format_only)).collect();
        report("format only", runs, "");
    }

    for (name, key, ff) in
        [("text+gzip files", "text", FileFormat::PlainText), ("parquet files", "parquet", FileFormat::Parquet)]
    {
        if !wanted(key) {
            continue;
        }
        let mut bytes = 0;
        let runs = (0..args.runs).map(|_| rate(&records, |r| bytes = to_files(r, ff, args.gzip_level))).collect();
        let extra = format!("   {:.1} bytes/record on disk", bytes as f64 / records.len() as f64);
        report(name, runs, &extra);
    }
}
