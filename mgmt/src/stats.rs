//! Counters of the running appliance: each worker publishes a snapshot of what it
//! owns every few hundred milliseconds (never blocking: it skips a turn if a reader
//! holds the board); readers sum them into `vpcgate stats` JSON and Prometheus text.

use std::fmt::Write;
use std::sync::Mutex;

use dataplane::accounting::FlowId;
use dataplane::addr::Ip;
use dataplane::pipeline::{DropReason, Hop};
use dataplane::stats::{EniCounters, Stats};
use dataplane::tables::Tables;
use dataplane::wire::Malformed;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::daemon::Shared;

/// One port queue as its worker saw it.
#[derive(Clone, Debug, Default)]
pub struct QueueCounters {
    pub port: String,
    pub queue: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the kernel dropped for want of room in our rings.
    pub rx_dropped: u64,
}

/// What one worker owns, as of its last publication.
#[derive(Clone, Debug)]
pub struct WorkerSnapshot {
    pub worker: usize,
    pub core: Option<usize>,
    pub stats: Stats,
    pub conntrack_entries: u32,
    pub conntrack_capacity: u32,
    /// Entries per ENI (by ENI key) on this core.
    pub conntrack_per_eni: Vec<u32>,
    pub queues: Vec<QueueCounters>,
    /// Frames handed to another worker (their flow's owner), received from others,
    /// and dropped because the owner's ring was full.
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub handoff_dropped: u64,
    pub batches: u64,
    /// Frames per batch and nanoseconds per batch.
    pub batch_sizes: Histogram<u64>,
    pub batch_nanos: Histogram<u64>,
    /// Flow records handed to the flow-log thread, and skipped (channel full).
    pub records_sent: u64,
    pub records_skipped: u64,
    /// The AF_XDP sockets' own counts: frames lost to a full TX ring, frames the
    /// kernel dropped before the worker saw them, wakeups made.
    pub tx_ring_full: u64,
    pub rx_dropped: u64,
    pub wakeups: u64,
    /// The flows this worker sampled recently, and its sampling rate (1 in `top_every`).
    pub top_flows: Vec<FlowSample>,
    pub top_every: u32,
    /// The table generation the worker judged its last batch with.
    pub generation: u64,
}

impl WorkerSnapshot {
    pub fn new(worker: usize, core: Option<usize>) -> WorkerSnapshot {
        WorkerSnapshot {
            worker,
            core,
            stats: Stats::default(),
            conntrack_entries: 0,
            conntrack_capacity: 0,
            conntrack_per_eni: Vec::new(),
            queues: Vec::new(),
            handoff_out: 0,
            handoff_in: 0,
            handoff_dropped: 0,
            batches: 0,
            batch_sizes: Histogram::new_with_bounds(1, 4096, 2).expect("histogram bounds"),
            batch_nanos: Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds"),
            records_sent: 0,
            records_skipped: 0,
            tx_ring_full: 0,
            rx_dropped: 0,
            wakeups: 0,
            top_flows: Vec::new(),
            top_every: 1,
            generation: 0,
        }
    }
}

/// Flow-log delivery counters, per flow log.
#[derive(Clone, Debug, Default)]
pub struct FlowLogCounters {
    pub flow_log_id: String,
    pub records_written: u64,
    pub records_skipped: u64,
    pub files: u64,
    pub bytes: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

impl From<flowlog::LogStats> for FlowLogCounters {
    fn from(s: flowlog::LogStats) -> FlowLogCounters {
        FlowLogCounters {
            flow_log_id: s.flow_log_id,
            records_written: s.sink.records,
            records_skipped: s.skipped_records + s.sink.dropped,
            files: s.sink.files,
            bytes: s.sink.bytes,
            errors: s.sink.errors,
            last_error: s.last_error,
        }
    }
}

/// One flow direction at one ENI as a worker sampled it (see [`dataplane::topflows`]).
pub use dataplane::topflows::FlowSample;

/// Accepted and rejected flows each kept in a `DescribeStats` answer.
pub const TOP_FLOWS: usize = 50;

/// `TopFlows`: samples merged across workers (a flow handed between workers sums),
/// the [`TOP_FLOWS`] accepted flows with most bytes, then the [`TOP_FLOWS`] rejected
/// flows with most packets.
pub fn top_flows_json(t: &Tables, samples: &[FlowSample]) -> Value {
    let mut merged: Vec<FlowSample> = Vec::new();
    let mut index: std::collections::HashMap<FlowId, usize> = std::collections::HashMap::new();
    for s in samples {
        match index.get(&s.id) {
            Some(&i) => {
                merged[i].packets += s.packets;
                merged[i].bytes += s.bytes;
                merged[i].rejected_at = merged[i].rejected_at.or(s.rejected_at);
                merged[i].last_seen = merged[i].last_seen.max(s.last_seen);
            }
            None => {
                index.insert(s.id, merged.len());
                merged.push(*s);
            }
        }
    }
    let (mut accepted, mut rejected): (Vec<FlowSample>, Vec<FlowSample>) =
        merged.into_iter().partition(|s| s.id.accept);
    accepted.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.packets.cmp(&a.packets)));
    rejected.sort_by(|a, b| b.packets.cmp(&a.packets).then(b.bytes.cmp(&a.bytes)));
    let eni_id = |k: u32| t.enis.get(k as usize).and_then(|e| e.as_ref()).map(|e| e.id.clone());
    accepted
        .iter()
        .take(TOP_FLOWS)
        .chain(rejected.iter().take(TOP_FLOWS))
        .map(|s| {
            let ip = |bits| Ip { family: s.id.family, bits }.to_string();
            json!({
                "NetworkInterfaceId": eni_id(s.id.eni.0), "Direction": if s.id.egress { "egress" } else { "ingress" },
                "Src": ip(s.id.src), "Dst": ip(s.id.dst), "SrcPort": s.id.sport, "DstPort": s.id.dport, "Protocol": s.id.proto,
                "Action": if s.id.accept { "ACCEPT" } else { "REJECT" }, "RejectedAt": s.rejected_at.map(Hop::name),
                "Packets": s.packets, "Bytes": s.bytes,
            })
        })
        .collect()
}

/// Where workers and the flow-log thread publish; readers copy out.
#[derive(Default)]
pub struct StatsBoard {
    pub workers: Mutex<Vec<WorkerSnapshot>>,
    pub flow_logs: Mutex<Vec<FlowLogCounters>>,
}

impl StatsBoard {
    /// Publishes a worker's snapshot without ever blocking it: if a reader holds the
    /// board, this turn is skipped.
    pub fn publish(&self, snap: &WorkerSnapshot) {
        if let Ok(mut w) = self.workers.try_lock() {
            match w.iter_mut().find(|s| s.worker == snap.worker) {
                Some(s) => *s = snap.clone(),
                None => w.push(snap.clone()),
            }
        }
    }
}

fn per_eni(t: &Tables, workers: &[WorkerSnapshot]) -> Vec<(String, EniCounters, u32, u32)> {
    t.enis
        .iter()
        .flatten()
        .map(|e| {
            let mut c = EniCounters::default();
            let mut entries = 0u32;
            let mut available = u32::MAX;
            for w in workers {
                if let Some(x) = w.stats.per_eni.get(e.key.0 as usize) {
                    c.add(x);
                }
                let mine = w.conntrack_per_eni.get(e.key.0 as usize).copied().unwrap_or(0);
                entries += mine;
                let room = (w.conntrack_capacity - w.conntrack_entries)
                    .min(t.ct_limits.max_entries_per_eni.saturating_sub(mine));
                available = available.min(room);
            }
            if workers.is_empty() {
                available = 0;
            }
            (e.id.clone(), c, entries, available)
        })
        .collect()
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999), "max": h.max(), "count": h.len()})
}

/// `DescribeStats`: totals, per worker, per port queue, per ENI, per flow log.
pub fn describe(shared: &Shared) -> Value {
    let t = shared.tables.load();
    let workers = shared.stats.workers.lock().map(|w| w.clone()).unwrap_or_default();
    let flow_logs = shared.stats.flow_logs.lock().map(|f| f.clone()).unwrap_or_default();
    let mut v = snapshot_json(&t, &workers, &flow_logs);
    // When the board was read (Unix nanoseconds): readers take rates over the time
    // between two answers.
    v["SampledAt"] = json!(crate::extension::now_nanos());
    let h = shared.publish.histograms();
    // Durable (acknowledgeable) change -> the last worker judging with its tables.
    v["Publish"] = json!({"Generation": t.generation, "DurableToWorkersNanos": quantiles(&h.publish),
                          "CompileNanos": quantiles(&h.compile),
                          // Per worker: the snapshot stored -> this worker on it.
                          "PickupNanos": h.pickup.iter().map(quantiles).collect::<Vec<_>>()});
    v
}

pub fn snapshot_json(t: &Tables, workers: &[WorkerSnapshot], flow_logs: &[FlowLogCounters]) -> Value {
    let mut total = Stats::default();
    for w in workers {
        total.add(&w.stats);
    }
    let verdicts = |s: &Stats| {
        let mut dropped = serde_json::Map::new();
        for (i, name) in DropReason::KINDS.iter().enumerate() {
            dropped.insert(name.to_string(), json!(s.dropped[i]));
        }
        let mut malformed = serde_json::Map::new();
        for m in Malformed::ALL {
            malformed.insert(m.name().to_string(), json!(s.malformed[*m as usize]));
        }
        let rejected: serde_json::Map<String, Value> =
            Hop::ALL.iter().map(|h| (h.name().to_string(), json!(s.rejected[*h as usize]))).collect();
        json!({"Frames": s.frames(), "Bytes": s.bytes, "Forwarded": s.forwarded, "Replied": s.replied, "Untracked": s.untracked,
               "FlowCacheHits": s.flow_cache_hits, "Rejected": rejected, "Dropped": dropped, "Malformed": malformed})
    };
    json!({
        "Totals": verdicts(&total),
        "Workers": workers.iter().map(|w| json!({
            "Worker": w.worker, "Core": w.core, "Generation": w.generation, "Verdicts": verdicts(&w.stats),
            "ConntrackEntries": w.conntrack_entries, "ConntrackCapacity": w.conntrack_capacity,
            "HandoffOut": w.handoff_out, "HandoffIn": w.handoff_in, "HandoffDropped": w.handoff_dropped,
            "Batches": w.batches, "BatchSize": quantiles(&w.batch_sizes), "BatchNanos": quantiles(&w.batch_nanos),
            "FlowRecordsSent": w.records_sent, "FlowRecordsSkipped": w.records_skipped,
            "TxRingFull": w.tx_ring_full, "RxDropped": w.rx_dropped, "Wakeups": w.wakeups,
            "Queues": w.queues.iter().map(|q| json!({"Port": q.port, "Queue": q.queue, "RxPackets": q.rx_packets, "RxBytes": q.rx_bytes,
                                                     "TxPackets": q.tx_packets, "TxBytes": q.tx_bytes, "RxDropped": q.rx_dropped})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "NetworkInterfaces": per_eni(t, workers).into_iter().map(|(id, c, entries, available)| json!({
            "NetworkInterfaceId": id, "OutPackets": c.out_packets, "OutBytes": c.out_bytes, "InPackets": c.in_packets, "InBytes": c.in_bytes,
            "RejectedOut": c.rejected_out, "RejectedOutBytes": c.rejected_out_bytes,
            "RejectedIn": c.rejected_in, "RejectedInBytes": c.rejected_in_bytes, "ConntrackEntries": entries,
            "conntrack_allowance_exceeded": c.conntrack_allowance_exceeded, "conntrack_allowance_available": available,
            "srcdst_check_dropped": c.srcdst_check_dropped,
        })).collect::<Vec<_>>(),
        "FlowLogs": flow_logs.iter().map(|f| json!({"FlowLogId": f.flow_log_id, "RecordsWritten": f.records_written, "RecordsSkipped": f.records_skipped,
                                                     "Files": f.files, "Bytes": f.bytes, "Errors": f.errors, "LastError": f.last_error})).collect::<Vec<_>>(),
        "TopFlows": top_flows_json(t, &workers.iter().flat_map(|w| w.top_flows.iter().copied()).collect::<Vec<_>>()),
        // Top flows are counted exactly while this is 1, estimated from 1-in-N samples above.
        "TopFlowsSampledOneIn": workers.iter().map(|w| w.top_every).max().unwrap_or(1),
    })
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition format (version 0.0.4) of a `DescribeStats` answer.
pub fn prometheus(stats: &Value) -> String {
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(s, "# HELP vpcgate_{name} {help}");
        let _ = writeln!(s, "# TYPE vpcgate_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "vpcgate_{name}{labels} {v}");
        }
    };
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let workers = stats["Workers"].as_array().cloned().unwrap_or_default();
    let per_worker = |f: &dyn Fn(&Value) -> f64| -> Vec<(String, f64)> {
        workers.iter().map(|w| (format!("{{worker=\"{}\"}}", w["Worker"]), f(w))).collect()
    };
    family(
        "frames_total",
        "counter",
        "Frames received by the workers.",
        per_worker(&|w| num(&w["Verdicts"]["Frames"])),
    );
    family("bytes_total", "counter", "Bytes received by the workers.", per_worker(&|w| num(&w["Verdicts"]["Bytes"])));
    family("forwarded_total", "counter", "Frames forwarded.", per_worker(&|w| num(&w["Verdicts"]["Forwarded"])));
    family("replied_total", "counter", "ARP/ND requests answered.", per_worker(&|w| num(&w["Verdicts"]["Replied"])));
    family(
        "untracked_total",
        "counter",
        "Packets judged untracked (no conntrack entry).",
        per_worker(&|w| num(&w["Verdicts"]["Untracked"])),
    );
    family(
        "flow_cache_hits_total",
        "counter",
        "Frames that carried out a cached decision of a known flow.",
        per_worker(&|w| num(&w["Verdicts"]["FlowCacheHits"])),
    );
    family(
        "worker_info",
        "gauge",
        "The core each worker is pinned to (1 per worker).",
        workers
            .iter()
            .map(|w| {
                let core = w["Core"].as_u64().map_or(String::new(), |c| c.to_string());
                (format!("{{worker=\"{}\",core=\"{core}\"}}", w["Worker"]), 1.0)
            })
            .collect(),
    );
    let mut rejected = Vec::new();
    let mut dropped = Vec::new();
    let mut malformed = Vec::new();
    for w in &workers {
        let id = &w["Worker"];
        for (hop, v) in w["Verdicts"]["Rejected"].as_object().into_iter().flatten() {
            rejected.push((format!("{{worker=\"{id}\",hop=\"{hop}\"}}"), num(v)));
        }
        for (reason, v) in w["Verdicts"]["Dropped"].as_object().into_iter().flatten() {
            dropped.push((format!("{{worker=\"{id}\",reason=\"{reason}\"}}"), num(v)));
        }
        for (detail, v) in w["Verdicts"]["Malformed"].as_object().into_iter().flatten() {
            malformed.push((format!("{{worker=\"{id}\",detail=\"{detail}\"}}"), num(v)));
        }
    }
    family("rejected_total", "counter", "Frames refused by policy, by the hop that refused them.", rejected);
    family("dropped_total", "counter", "Frames dropped before policy, by reason.", dropped);
    family("malformed_total", "counter", "Malformed frames, by the check that failed.", malformed);
    family(
        "handoff_out_total",
        "counter",
        "Frames handed to the worker owning their flow.",
        per_worker(&|w| num(&w["HandoffOut"])),
    );
    family(
        "handoff_in_total",
        "counter",
        "Frames received from other workers (this worker owns their flow).",
        per_worker(&|w| num(&w["HandoffIn"])),
    );
    family(
        "handoff_dropped_total",
        "counter",
        "Frames lost because the owner's ring was full.",
        per_worker(&|w| num(&w["HandoffDropped"])),
    );
    family(
        "conntrack_entries",
        "gauge",
        "Conntrack entries held by the worker.",
        per_worker(&|w| num(&w["ConntrackEntries"])),
    );
    family(
        "conntrack_capacity",
        "gauge",
        "Conntrack entries the worker can hold.",
        per_worker(&|w| num(&w["ConntrackCapacity"])),
    );
    family(
        "flow_records_sent_total",
        "counter",
        "Flow records handed to the flow-log thread.",
        per_worker(&|w| num(&w["FlowRecordsSent"])),
    );
    family(
        "flow_records_skipped_total",
        "counter",
        "Flow records the workers could not hand over.",
        per_worker(&|w| num(&w["FlowRecordsSkipped"])),
    );
    let mut latency = Vec::new();
    for w in &workers {
        for (q, key) in [("0.5", "p50"), ("0.99", "p99"), ("0.999", "p999")] {
            latency
                .push((format!("{{worker=\"{}\",quantile=\"{q}\"}}", w["Worker"]), num(&w["BatchNanos"][key]) / 1e9));
        }
    }
    family("batch_latency_seconds", "gauge", "Pipeline time per batch, quantiles since start.", latency);
    let mut sizes = Vec::new();
    for w in &workers {
        for (q, key) in [("0.5", "p50"), ("0.99", "p99"), ("1", "max")] {
            sizes.push((format!("{{worker=\"{}\",quantile=\"{q}\"}}", w["Worker"]), num(&w["BatchSize"][key])));
        }
    }
    family("batch_size_frames", "gauge", "Frames per batch, quantiles since start.", sizes);
    family("batches_total", "counter", "Batches processed.", per_worker(&|w| num(&w["Batches"])));
    let queues: Vec<(String, &Value)> = workers
        .iter()
        .flat_map(|w| w["Queues"].as_array().into_iter().flatten())
        .map(|q| (format!("{{port=\"{}\",queue=\"{}\"}}", esc(q["Port"].as_str().unwrap_or("")), q["Queue"]), q))
        .collect();
    let per_queue =
        |key: &str| -> Vec<(String, f64)> { queues.iter().map(|(l, q)| (l.clone(), num(&q[key]))).collect() };
    family("port_rx_packets_total", "counter", "Frames received per port queue.", per_queue("RxPackets"));
    family("port_tx_packets_total", "counter", "Frames sent per port queue.", per_queue("TxPackets"));
    family("port_rx_bytes_total", "counter", "Bytes received per port queue.", per_queue("RxBytes"));
    family("port_tx_bytes_total", "counter", "Bytes sent per port queue.", per_queue("TxBytes"));
    family(
        "port_rx_dropped_total",
        "counter",
        "Frames the kernel dropped for want of room in the queue's rings.",
        per_queue("RxDropped"),
    );
    let enis = stats["NetworkInterfaces"].as_array().cloned().unwrap_or_default();
    let per_eni = |key: &str| -> Vec<(String, f64)> {
        enis.iter()
            .map(|e| (format!("{{eni=\"{}\"}}", esc(e["NetworkInterfaceId"].as_str().unwrap_or(""))), num(&e[key])))
            .collect()
    };
    family(
        "eni_out_packets_total",
        "counter",
        "Packets that left the ENI (its flow log's ACCEPT egress, incl. those refused at the destination).",
        per_eni("OutPackets"),
    );
    family("eni_in_packets_total", "counter", "Packets delivered to the ENI.", per_eni("InPackets"));
    family("eni_out_bytes_total", "counter", "IP bytes that left the ENI.", per_eni("OutBytes"));
    family("eni_in_bytes_total", "counter", "IP bytes delivered to the ENI.", per_eni("InBytes"));
    family("eni_conntrack_entries", "gauge", "Conntrack entries of the ENI, all cores.", per_eni("ConntrackEntries"));
    family("eni_rejected_out_total", "counter", "Packets from the ENI refused by policy.", per_eni("RejectedOut"));
    family("eni_rejected_in_total", "counter", "Packets to the ENI refused by policy.", per_eni("RejectedIn"));
    family(
        "eni_rejected_out_bytes_total",
        "counter",
        "IP bytes from the ENI refused by policy.",
        per_eni("RejectedOutBytes"),
    );
    family(
        "eni_rejected_in_bytes_total",
        "counter",
        "IP bytes to the ENI refused by policy.",
        per_eni("RejectedInBytes"),
    );
    family(
        "conntrack_allowance_exceeded_total",
        "counter",
        "Packets dropped because no conntrack entry was available.",
        per_eni("conntrack_allowance_exceeded"),
    );
    family(
        "conntrack_allowance_available",
        "gauge",
        "Conntrack entries the ENI can still open (smallest across cores).",
        per_eni("conntrack_allowance_available"),
    );
    family(
        "srcdst_check_dropped_total",
        "counter",
        "Packets dropped by the source/destination check.",
        per_eni("srcdst_check_dropped"),
    );
    let fls = stats["FlowLogs"].as_array().cloned().unwrap_or_default();
    let per_fl = |key: &str| -> Vec<(String, f64)> {
        fls.iter()
            .map(|f| (format!("{{flow_log=\"{}\"}}", esc(f["FlowLogId"].as_str().unwrap_or(""))), num(&f[key])))
            .collect()
    };
    family(
        "flowlog_records_written_total",
        "counter",
        "Flow records written by each flow log.",
        per_fl("RecordsWritten"),
    );
    family(
        "flowlog_records_skipped_total",
        "counter",
        "Flow records skipped (SKIPDATA) by each flow log.",
        per_fl("RecordsSkipped"),
    );
    family("flowlog_sink_errors_total", "counter", "Delivery errors of each flow log.", per_fl("Errors"));
    family("flowlog_files_total", "counter", "Files (objects, streams) written by each flow log.", per_fl("Files"));
    family("flowlog_bytes_total", "counter", "Bytes written by each flow log.", per_fl("Bytes"));
    s
}
