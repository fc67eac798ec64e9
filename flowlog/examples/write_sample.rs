//! Writes a deterministic set of flow records through every file sink, in several
//! formats, and prints a JSON summary of what it wrote, for third-party readers to
//! check against (tests/clients).
//!
//! Usage: `cargo run -q -p flowlog --example write_sample -- OUTDIR`
//!
//! OUTDIR/s3/         S3 "buckets": vpcgate-text (gzip text) and vpcgate-parquet,
//!                    one prefix per flow log
//! OUTDIR/cloudwatch/ one log group per flow log, one stream file per ENI

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use flowlog::sink::{CloudWatchDirConfig, CloudWatchDirSink, FileFormat, S3DirConfig, S3DirSink};
use flowlog::{FlowRecord, LogDestination, LogFormat, LogStatus, Sink, SinkStats};
use serde_json::{json, Value};

/// 2024-03-31 23:50:00 UTC: the sample crosses an hour, a day and a month.
const START: u64 = 1_711_929_000;
const INTERVALS: u64 = 40;

const V2: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} \
                  ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";
const V3_EXTRA: &str = "${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr}";
const V4_EXTRA: &str = "${region} ${az-id} ${sublocation-type} ${sublocation-id}";
const V5_EXTRA: &str = "${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}";

struct FlowLogSpec {
    name: &'static str,
    format: String,
    hive: bool,
    hourly: bool,
}

fn flow_logs() -> Vec<FlowLogSpec> {
    let spec = |name, format: String, hive, hourly| FlowLogSpec { name, format, hive, hourly };
    vec![
        spec("default", V2.to_owned(), false, false),
        spec("v3", format!("{V2} {V3_EXTRA}"), false, false),
        spec("v4", format!("{V2} {V3_EXTRA} {V4_EXTRA}"), false, true),
        spec("v5", format!("{V2} {V3_EXTRA} {V4_EXTRA} {V5_EXTRA}"), false, false),
        // AWS's own tcp-flags example order: readers must go by the header, not position.
        spec(
            "v3-reordered",
            "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} \
             ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} \
             ${bytes} ${packets} ${start} ${end} ${action} ${tcp-flags} ${log-status}"
                .to_owned(),
            false,
            false,
        ),
        spec("v5-hive", format!("{V2} {V3_EXTRA} {V4_EXTRA} {V5_EXTRA}"), true, true),
    ]
}

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write_sample OUTDIR");
        return ExitCode::from(2);
    };
    match run(&out) {
        Ok(summary) => {
            println!("{}", serde_json::to_string_pretty(&summary).expect("JSON values serialize"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("write_sample: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let enis = common::enis();
    let mut rng = common::Lcg::new(42);
    let batches: Vec<(u64, Vec<FlowRecord>)> = (0..INTERVALS)
        .map(|i| {
            let start = START + 60 * i;
            (start + 60, common::interval(&mut rng, &enis, start, i))
        })
        .collect();

    let mut logs = Vec::new();
    for (n, spec) in flow_logs().into_iter().enumerate() {
        let format = LogFormat::parse(&spec.format)?;
        let flow_log_id = format!("fl-{:017x}", 0xabc000 + n);
        let s3 = |bucket: &str, file_format| -> Result<S3DirSink, Box<dyn std::error::Error>> {
            let dest = LogDestination::parse(&format!("arn:aws:s3:::{bucket}/{}", spec.name))?;
            let mut cfg = S3DirConfig::new(out.join("s3"), dest, &flow_log_id);
            cfg.format = format.clone();
            cfg.file_format = file_format;
            cfg.hive_compatible_partitions = spec.hive;
            cfg.per_hour_partition = spec.hourly;
            Ok(S3DirSink::new(cfg)?)
        };
        let mut cw = CloudWatchDirConfig::new(out.join("cloudwatch"), spec.name);
        cw.format = format.clone();
        let mut sinks: Vec<(&str, Box<dyn Sink>)> = vec![
            ("text", Box::new(s3("vpcgate-text", FileFormat::PlainText)?)),
            ("parquet", Box::new(s3("vpcgate-parquet", FileFormat::Parquet)?)),
            ("cloudwatch", Box::new(CloudWatchDirSink::new(cw)?)),
        ];
        // The records' own clock drives rotation, as when replaying a capture.
        for (now, batch) in &batches {
            for (_, sink) in &mut sinks {
                sink.write(batch)?;
                sink.rotate_if_due(*now)?;
            }
        }
        let mut stats = serde_json::Map::new();
        for (kind, sink) in &mut sinks {
            sink.close()?;
            stats.insert((*kind).to_owned(), stats_json(sink.stats()));
        }
        logs.push(json!({
            "name": spec.name,
            "flow_log_id": flow_log_id,
            "format": format.to_string(),
            "fields": format.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
            "columns": format.fields().iter().map(|f| f.column_name()).collect::<Vec<_>>(),
            "version": format.version(),
            "hive": spec.hive,
            "hourly": spec.hourly,
            "text_prefix": format!("vpcgate-text/{}", spec.name),
            "parquet_prefix": format!("vpcgate-parquet/{}", spec.name),
            "cloudwatch_group": spec.name,
            "stats": stats,
        }));
    }

    let records: Vec<&FlowRecord> = batches.iter().flat_map(|(_, b)| b).collect();
    Ok(json!({
        "out_dir": out,
        "s3_root": out.join("s3"),
        "cloudwatch_root": out.join("cloudwatch"),
        "totals": totals(&records),
        "first_start": records.iter().map(|r| r.start).min(),
        "last_end": records.iter().map(|r| r.end).max(),
        "accounts": enis.iter().map(|e| (e.account_id.clone(), e.region.clone())).collect::<BTreeMap<_, _>>(),
        "flow_logs": logs,
    }))
}

fn totals(records: &[&FlowRecord]) -> Value {
    let mut by_action: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ipv6 = 0;
    for r in records {
        *by_status.entry(r.log_status.as_str()).or_default() += 1;
        if let (LogStatus::Ok, Some(t)) = (r.log_status, &r.traffic) {
            let e = by_action.entry(t.action.as_str()).or_default();
            e.0 += 1;
            e.1 += t.packets;
            e.2 += t.bytes;
            ipv6 += u64::from(r.is_ipv6());
        }
    }
    json!({
        "records": records.len(),
        "by_log_status": by_status,
        "ipv6_records": ipv6,
        "by_action": by_action
            .into_iter()
            .map(|(a, (n, p, b))| (a, json!({"records": n, "packets": p, "bytes": b})))
            .collect::<BTreeMap<_, _>>(),
    })
}

fn stats_json(s: SinkStats) -> Value {
    json!({
        "records": s.records,
        "bytes": s.bytes,
        "files": s.files,
        "errors": s.errors,
        "dropped": s.dropped,
    })
}
