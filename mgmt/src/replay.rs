//! `vpcgate replay`: run a capture through the same pipeline the workers run, with
//! the capture's timestamps as the appliance clock. Needs no NIC and no root.
//!
//! Verdicts file (JSON lines, one per input frame, in order):
//! `{"frame": 0, "ingress_port": "internet", "verdict": "forward"|"reject"|"drop"|"reply",
//!   "egress_port": "web"|null, "reason": "sg-ingress"|...|null, "detail": "bad-ipv4-ihl"|null}`
//!
//! Stats file (`--stats`): the run's counters as `DescribeStats` answers them
//! (`Totals`, one entry in `Workers`, `NetworkInterfaces`, `FlowLogs`, `TopFlows`), so
//! what the flow logs say can be checked against the switch's own counters.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use dataplane::pipeline::{Outcome, Pipeline, PipelineConfig, Verdict};
use dataplane::port::pcap::{read_capture, PcapIo, PcapNgWriter};
use dataplane::stats::Stats;
use dataplane::tables::{EniId, Tables};
use dataplane::worker::{run_batch, BatchScratch};
use serde_json::json;

use crate::compile::compile_once;
use crate::model::Config;
use crate::stats::{snapshot_json, FlowLogCounters, WorkerSnapshot};
use crate::validate::{check, Checked};

pub struct ReplayOptions {
    pub config: PathBuf,
    pub pcap: PathBuf,
    pub verdicts: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Port for frames whose capture names no interface (classic pcap).
    pub port: Option<String>,
    /// Print every frame's hops to stdout.
    pub explain: bool,
    /// Write the config's flow logs under this directory, on the capture's clock.
    pub flow_log_root: Option<PathBuf>,
    /// Write the run's counters here, as `DescribeStats` answers (one worker).
    pub stats: Option<PathBuf>,
}

pub struct ReplaySummary {
    pub frames: u64,
    pub stats: Stats,
    /// Per flow log: records written (including NODATA/SKIPDATA).
    pub flow_logs: Vec<flowlog::LogStats>,
}

/// Loads, validates and compiles a config file.
pub fn load_config(path: &Path) -> Result<(Checked, Tables), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = Config::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let checked = check(&cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    let tables = compile_once(&checked);
    Ok((checked, tables))
}

/// The verdict line for one frame.
pub fn verdict_json(frame: u64, ingress: u16, o: &Outcome, t: &Tables) -> serde_json::Value {
    let egress = match o.verdict {
        Verdict::Forward(p) => Some(t.ports[p as usize].name.clone()),
        _ => None,
    };
    let detail = match o.verdict {
        Verdict::Drop(r) => r.detail(),
        _ => None,
    };
    let ingress = t.ports.get(ingress as usize).map(|p| p.name.clone());
    json!({"frame": frame, "ingress_port": ingress, "verdict": o.verdict.name(), "egress_port": egress,
           "reason": o.verdict.reason(), "detail": detail})
}

pub fn replay(opts: &ReplayOptions) -> Result<ReplaySummary, String> {
    let (checked, tables) = load_config(&opts.config)?;
    let captured = read_capture(&opts.pcap).map_err(|e| format!("{}: {e}", opts.pcap.display()))?;
    let default_port = match &opts.port {
        Some(name) => {
            Some(tables.port_by_name(name).ok_or_else(|| format!("--port {name}: no such port in the config"))?)
        }
        None => None,
    };
    let port_names: Vec<String> = tables.ports.iter().map(|p| p.name.clone()).collect();
    let out = match &opts.out {
        Some(p) => Some(PcapNgWriter::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let port_of = |name: Option<&str>| match name {
        Some(n) => tables.port_by_name(n),
        None => default_port,
    };
    let mut io =
        PcapIo::new(captured, port_names, port_of, out).map_err(|e| format!("{}: {e}", opts.pcap.display()))?;
    let mut verdicts = match &opts.verdicts {
        Some(p) => Some(BufWriter::new(File::create(p).map_err(|e| format!("{}: {e}", p.display()))?)),
        None => None,
    };
    let ct = checked.config.appliance.conntrack;
    let mut pipeline = Pipeline::new(PipelineConfig { conntrack_entries: ct.max_entries, ..Default::default() });
    let mut scratch = BatchScratch::new(64);
    scratch.explain = opts.explain;
    let mut flow_logs = match &opts.flow_log_root {
        Some(root) => {
            if checked.flow_logs.is_empty() {
                eprintln!(
                    "vpcgate replay: the config has no FlowLogs; nothing will be written under {}",
                    root.display()
                );
            }
            Some(crate::flowlogs::open(&checked, &checked.flow_logs, root).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let mut last_time = 0u64;
    let mut frame = 0u64;
    let mut error = None;
    let mut stdout = std::io::stdout().lock();
    let mut explaining = opts.explain;
    loop {
        let n = run_batch(&mut io, &mut pipeline, &tables, 0, &mut scratch, 64, |rx, o, steps| {
            last_time = last_time.max(rx.time.unwrap_or(0));
            if explaining {
                // Stop explaining (not replaying) when stdout goes away, e.g. `| head`.
                explaining = writeln!(stdout, "frame {frame}:").is_ok()
                    && steps.iter().all(|s| writeln!(stdout, "  {}", s.describe(&tables)).is_ok());
            }
            if let Some(w) = &mut verdicts {
                if let Err(e) = writeln!(w, "{}", verdict_json(frame, rx.port, o, &tables)) {
                    error.get_or_insert(e);
                }
            }
            frame += 1;
        });
        if let Some(agg) = flow_logs.as_mut() {
            // Records of finished intervals; windows close on the capture's clock.
            agg.add(&pipeline.take_records().records());
            agg.close_through(last_time / 1_000_000_000).map_err(|e| format!("writing flow logs: {e}"))?;
        }
        if n == 0 {
            break;
        }
    }
    let mut flow_log_stats = Vec::new();
    if let Some(mut agg) = flow_logs {
        // The capture ended: every open interval is flushed.
        pipeline.flush_accounting(&tables, last_time);
        agg.add(&pipeline.take_records().records());
        agg.finish().map_err(|e| format!("writing flow logs: {e}"))?;
        flow_log_stats = agg.stats();
    }
    if let Some(path) = &opts.stats {
        let doc = stats_json(&tables, &pipeline, &flow_log_stats, last_time);
        let text = serde_json::to_string_pretty(&doc).expect("stats serialise") + "\n";
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(e) = error {
        return Err(format!("writing verdicts: {e}"));
    }
    if let Some(mut w) = verdicts {
        w.flush().map_err(|e| format!("writing verdicts: {e}"))?;
    }
    io.finish().map_err(|e| format!("writing the output capture: {e}"))?;
    Ok(ReplaySummary { frames: frame, stats: pipeline.stats, flow_logs: flow_log_stats })
}

/// The counters of a replay as `DescribeStats` answers them: the pipeline is one
/// worker (worker 0, on no particular core).
pub fn stats_json(t: &Tables, p: &Pipeline, flow_logs: &[flowlog::LogStats], now: u64) -> serde_json::Value {
    let mut w = WorkerSnapshot::new(0, None);
    w.stats = p.stats.clone();
    w.conntrack_entries = p.conntrack.len();
    w.conntrack_capacity = p.conntrack.capacity();
    w.conntrack_per_eni = (0..t.enis.len() as u32).map(|e| p.conntrack.eni_len(EniId(e))).collect();
    w.top_flows = p.top.samples(now);
    w.top_every = p.top.every();
    let logs: Vec<FlowLogCounters> = flow_logs.iter().cloned().map(FlowLogCounters::from).collect();
    snapshot_json(t, &[w], &logs)
}
