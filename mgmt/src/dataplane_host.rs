//! The dataplane inside `vpcgated`: checks the ports, binds one AF_XDP socket per
//! (port, queue), runs one pinned worker per queue, and a flow-log thread that
//! aggregates the workers' records and delivers them. Reports what it found (XDP
//! mode, zero-copy or copy, queues, RSS) instead of failing silently or slowly.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use dataplane::accounting::{FinishedFlow, RecordBatch};
use dataplane::pipeline::{Pipeline, PipelineConfig};
use dataplane::port::afxdp::{AfXdpConfig, AfXdpIo, PortSpec, XdpMode};
use dataplane::tables::Tables;
use dataplane::worker::{owner_key, run_worker, Mesh, Poll, WorkerConfig, WorkerHost, WorkerTelemetry};
use flowlog::Aggregator;

use crate::daemon::{Shared, Tracer};
use crate::error::{invalid, Result as ApiResult};
use crate::extension::now_nanos;
use crate::flowlogs;
use crate::model::WorkersConfig;
use crate::stats::{FlowLogCounters, QueueCounters, StatsBoard, WorkerSnapshot};
use crate::trace::{self, Leg, TraceRequest};
use crate::validate::Checked;

/// What the daemon learns from the interfaces at start, printed for the operator.
#[derive(Clone, Debug)]
pub struct PortFacts {
    pub port: String,
    pub interface: String,
    pub driver: String,
    pub rx_queues: usize,
    pub mtu: u32,
    /// `Some(true)` if the RSS key makes the hash symmetric, `None` without RSS.
    pub rss_symmetric: Option<bool>,
    /// The interface's interrupts (number, name, CPUs they may run on); empty for
    /// virtual interfaces.
    pub irqs: Vec<(u32, String, String)>,
}

fn sys(ifname: &str, rel: &str) -> PathBuf {
    Path::new("/sys/class/net").join(ifname).join(rel)
}

/// Facts about an interface, or a clear error if it is missing.
pub fn port_facts(port: &str, ifname: &str) -> Result<PortFacts, String> {
    if !sys(ifname, "").exists() {
        return Err(format!("port {port}: interface {ifname} does not exist"));
    }
    let rx_queues = std::fs::read_dir(sys(ifname, "queues"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
        .unwrap_or(1)
        .max(1);
    let mtu = std::fs::read_to_string(sys(ifname, "mtu")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1500);
    let driver = std::fs::read_link(sys(ifname, "device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "virtual (no device driver: veth, bridge, ...)".into());
    Ok(PortFacts {
        port: port.into(),
        interface: ifname.into(),
        driver,
        rx_queues,
        mtu,
        rss_symmetric: rss_symmetric(ifname),
        irqs: irqs(ifname),
    })
}

/// The interrupts of an interface, from /proc/interrupts: lines naming the interface
/// (`eth0-TxRx-0`, `i40e-eth0-TxRx-0`, ...) or its PCI device (`mlx5_comp0@pci:0000:...`),
/// with their `smp_affinity_list`.
fn irqs(ifname: &str) -> Vec<(u32, String, String)> {
    let device = std::fs::read_link(sys(ifname, "device"))
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
    let Ok(table) = std::fs::read_to_string("/proc/interrupts") else { return Vec::new() };
    table
        .lines()
        .filter_map(|line| {
            let (num, rest) = line.trim_start().split_once(':')?;
            let irq: u32 = num.trim().parse().ok()?;
            let name = rest.split_whitespace().last()?.to_string();
            let mine = name.split(['-', '@', ' ']).any(|part| part == ifname)
                || device.as_deref().is_some_and(|d| name.contains(d));
            if !mine {
                return None;
            }
            let cpus = std::fs::read_to_string(format!("/proc/irq/{irq}/smp_affinity_list")).unwrap_or_default();
            Some((irq, name, cpus.trim().to_string()))
        })
        .collect()
}

/// What the facts say about running workers on `cores` (worker `i` serves queue `i`):
/// where the interrupts of a queue run on a core other than its worker's, the kernel
/// half of every packet and the worker's half are on different cores.
fn irq_advice(f: &PortFacts, cores: &[usize]) -> Option<String> {
    if f.irqs.is_empty() {
        return None;
    }
    let shown: Vec<String> = f.irqs.iter().map(|(n, name, cpus)| format!("{n} {name} -> cpus {cpus}")).collect();
    let pinned = cores.iter().all(|c| f.irqs.iter().any(|(_, _, cpus)| cpus == &c.to_string()));
    Some(if pinned {
        format!("irqs: {}", shown.join(", "))
    } else {
        format!(
            "irqs: {} (not one per worker core {cores:?}: pin queue i's interrupt to worker i's core, see docs/deploy.md)",
            shown.join(", ")
        )
    })
}

/// Reads the RSS key with `ethtool -x`: symmetric when it repeats every 16 bits
/// (the `6d:5a` key), so both directions of a flow hash to the same queue.
fn rss_symmetric(ifname: &str) -> Option<bool> {
    let out = std::process::Command::new("ethtool").arg("-x").arg(ifname).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.contains("RSS hash key"));
    lines.next()?;
    let key: Vec<u8> = lines.next()?.split(':').filter_map(|b| u8::from_str_radix(b.trim(), 16).ok()).collect();
    (key.len() >= 4).then(|| key.windows(3).all(|w| w[0] == w[2]))
}

pub struct DataplaneHandle {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    flowlog: Option<JoinHandle<()>>,
    config_tx: Sender<Checked>,
}

impl DataplaneHandle {
    /// Where newly accepted configs go for the flow-log thread (tables reach the
    /// workers through the shared snapshot).
    pub fn config_sender(&self) -> Sender<Checked> {
        self.config_tx.clone()
    }

    /// Stops the workers (detaching their XDP programs) and delivers the flow
    /// records they owe.
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            let _ = w.join();
        }
        drop(self.config_tx);
        if let Some(f) = self.flowlog {
            let _ = f.join();
        }
    }
}

/// A trace job for the worker that owns the frame's flow.
struct TraceJob {
    port: u16,
    frame: Vec<u8>,
    reply: mpsc::Sender<Leg>,
}

struct HostTracer {
    jobs: Vec<Sender<TraceJob>>,
}

impl Tracer for HostTracer {
    fn trace(&self, t: &Tables, req: &TraceRequest, now: u64) -> ApiResult<Vec<Leg>> {
        if req.from.is_some() || req.to.is_some() {
            // Reachability is a question about the config (like AWS Reachability
            // Analyzer): judged against fresh state.
            return trace::trace_offline(t, req, now);
        }
        let (port, frame) = trace::build_frame(t, req)?;
        let owner = owner_key(&frame).map_or(0, |k| (k % self.jobs.len() as u64) as usize);
        let (tx, rx) = mpsc::channel();
        self.jobs[owner]
            .try_send(TraceJob { port, frame, reply: tx })
            .map_err(|_| invalid("The worker is busy; try again"))?;
        let leg = rx
            .recv_timeout(Duration::from_secs(2))
            .map_err(|_| invalid("The worker did not answer the trace in time"))?;
        Ok(vec![leg])
    }
}

/// The published tables as an `arc_swap::Cache` sees them.
struct Published(Arc<Shared>);

impl std::ops::Deref for Published {
    type Target = ArcSwap<Tables>;
    fn deref(&self) -> &ArcSwap<Tables> {
        &self.0.tables
    }
}

/// One worker's view of the daemon.
struct Host {
    shared: Arc<Shared>,
    /// The worker's copy of the published tables: checking it for a change is one
    /// atomic load, where loading the `ArcSwap` costs a reference count per batch.
    tables: arc_swap::Cache<Published, Arc<Tables>>,
    records: RecordLink,
    jobs: Receiver<TraceJob>,
    worker: usize,
    core: Option<usize>,
    port_names: Vec<String>,
    queue: u32,
    last_publish: Instant,
}

impl WorkerHost for Host {
    fn tables(&self) -> Arc<Tables> {
        self.shared.tables.load_full()
    }
    fn fresh_tables(&mut self, current: &Arc<Tables>) -> Option<Arc<Tables>> {
        let t = self.tables.load();
        (!Arc::ptr_eq(t, current)).then(|| t.clone())
    }
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
    fn switched(&mut self, from: u64, to: u64) {
        self.shared.publish.switched(self.worker, from, to);
    }
    fn now(&self) -> u64 {
        now_nanos()
    }
    fn records(&mut self, records: RecordBatch) -> Result<(), RecordBatch> {
        self.records.send(records)
    }
    fn spare_flows(&mut self) -> Option<Vec<FinishedFlow>> {
        self.records.spare()
    }
    fn housekeeping(&mut self, tables: &Tables, pipeline: &mut Pipeline, t: &WorkerTelemetry) {
        while let Ok(job) = self.jobs.try_recv() {
            let leg = trace::judge(
                tables,
                pipeline,
                job.port,
                &job.frame,
                now_nanos(),
                format!("packet (worker {})", self.worker),
            );
            let _ = job.reply.send(leg);
        }
        if self.last_publish.elapsed() >= Duration::from_millis(250) || self.stopping() {
            self.last_publish = Instant::now();
            self.shared.stats.publish(&snapshot(self, tables, pipeline, t));
        }
    }
}

fn snapshot(h: &Host, tables: &Tables, p: &Pipeline, t: &WorkerTelemetry) -> WorkerSnapshot {
    let mut s = WorkerSnapshot::new(h.worker, h.core);
    s.stats = p.stats.clone();
    s.conntrack_entries = p.conntrack.len();
    s.conntrack_capacity = p.conntrack.capacity();
    s.conntrack_per_eni =
        (0..tables.enis.len() as u32).map(|e| p.conntrack.eni_len(dataplane::tables::EniId(e))).collect();
    s.queues = t
        .ports
        .iter()
        .enumerate()
        .map(|(i, c)| QueueCounters {
            port: h.port_names.get(i).cloned().unwrap_or_default(),
            queue: h.queue,
            rx_packets: c[0],
            rx_bytes: c[1],
            tx_packets: c[2],
            tx_bytes: c[3],
            rx_dropped: 0,
        })
        .collect();
    s.handoff_out = t.handoff_out;
    s.handoff_in = t.handoff_in;
    s.handoff_dropped = t.handoff_dropped;
    s.batches = t.batches;
    s.batch_sizes = t.batch_sizes.clone();
    s.batch_nanos = t.batch_nanos.clone();
    s.records_sent = t.records_sent;
    s.records_skipped = t.records_skipped;
    s.tx_ring_full = t.io.tx_ring_full;
    s.rx_dropped = t.io.rx_dropped;
    s.wakeups = t.io.wakeups;
    s.top_flows = p.top.samples(now_nanos());
    s.top_every = p.top.every();
    s.generation = tables.generation;
    s
}

/// Where flow logs are written: `Appliance.FlowLogRoot`, else under the state dir.
pub fn flow_log_root(c: &Checked, state_dir: &Path) -> PathBuf {
    c.config.appliance.flow_log_root.as_ref().map(PathBuf::from).unwrap_or_else(|| state_dir.join("flowlogs"))
}

/// The workers' end of the channels to the flow-log thread.
#[derive(Clone)]
pub struct RecordLink {
    pub records: Sender<RecordBatch>,
    spares: Receiver<Vec<FinishedFlow>>,
}

impl RecordLink {
    /// Hands a batch over without waiting; gives it back if it cannot be taken now.
    pub fn send(&self, batch: RecordBatch) -> Result<(), RecordBatch> {
        self.records.try_send(batch).map_err(|e| match e {
            TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
        })
    }

    /// A flows vector the flow-log thread has emptied, if one came back.
    pub fn spare(&self) -> Option<Vec<FinishedFlow>> {
        self.spares.try_recv().ok()
    }
}

/// The flow-log thread's end: batches in, emptied flow vectors back out.
pub struct RecordInbox {
    records: Receiver<RecordBatch>,
    spares: Sender<Vec<FinishedFlow>>,
}

impl RecordInbox {
    /// The next batch; `None` once every worker's end is gone.
    pub fn recv(&self) -> Option<RecordBatch> {
        self.records.recv().ok()
    }

    /// Gives an emptied vector back for a worker's next flush, if there is room.
    pub fn give_back(&self, batch: RecordBatch) {
        let _ = self.spares.try_send(batch.into_spare());
    }
}

/// The channels between the workers and the flow-log thread: up to 1024 batches in
/// flight (a worker that finds the channel full reports SKIPDATA), and a few emptied
/// vectors on their way back, so flushes write into memory already mapped. A spare
/// holds the memory of the largest interval it carried until a flush reuses it.
pub fn record_channels() -> (RecordLink, RecordInbox) {
    let (records_tx, records_rx) = bounded::<RecordBatch>(1024);
    let (spares_tx, spares_rx) = bounded::<Vec<FinishedFlow>>(4);
    (RecordLink { records: records_tx, spares: spares_rx }, RecordInbox { records: records_rx, spares: spares_tx })
}

/// Hands a batch's records to the aggregator a few thousand at a time.
fn add_batch(agg: &mut Aggregator, batch: &RecordBatch) {
    batch.for_each_chunk(4096, |records| agg.add(records));
}

/// The flow-log thread (public for benchmarks and tests that drive it as the daemon
/// does): records in, windows closed two seconds after they end (the
/// workers flush at the boundary), config changes re-open the sinks.
pub fn flowlog_thread(
    first: Checked,
    root: PathBuf,
    inbox: RecordInbox,
    configs: Receiver<Checked>,
    board: Arc<Shared>,
) {
    let open = |c: &Checked| match flowlogs::open(c, &c.flow_logs, &root) {
        Ok(a) => Some(a),
        Err(e) => {
            log::error!("flow logs: {e}");
            None
        }
    };
    let mut agg = open(&first);
    // What the open sinks were made from: a config change that leaves it alone
    // keeps the open windows.
    let identity =
        |c: &Checked| (c.config.flow_logs.clone(), flowlogs::metas(c), c.config.appliance.flow_log_root.clone());
    let mut current = identity(&first);
    let mut last_close = Instant::now();
    loop {
        crossbeam_channel::select! {
            recv(inbox.records) -> msg => match msg {
                Ok(batch) => {
                    if let Some(a) = agg.as_mut() {
                        add_batch(a, &batch);
                    }
                    inbox.give_back(batch);
                }
                Err(_) => break,
            },
            recv(configs) -> msg => match msg {
                Ok(c) => {
                    let next = identity(&c);
                    if next == current {
                        continue;
                    }
                    current = next;
                    if let Some(mut old) = agg.take() {
                        if let Err(e) = old.finish() {
                            log::error!("flow logs: finishing before a config change: {e}");
                        }
                    }
                    agg = open(&c);
                }
                Err(_) => break,
            },
            default(Duration::from_millis(500)) => {}
        }
        if last_close.elapsed() >= Duration::from_secs(1) {
            last_close = Instant::now();
            if let Some(a) = agg.as_mut() {
                // Records already handed over belong in the windows about to close:
                // a backlog (this thread descheduled, a slow disk) must not push
                // them into a later window and leave a false NODATA behind.
                for _ in 0..inbox.records.len() {
                    match inbox.records.try_recv() {
                        Ok(batch) => {
                            add_batch(a, &batch);
                            inbox.give_back(batch);
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = a.close_through(now_nanos() / 1_000_000_000 - 2) {
                    log::warn!("flow logs: {e} (will retry)");
                }
                publish_flowlog_stats(&board.stats, a);
            }
        }
    }
    // Workers are gone: deliver everything still open.
    while let Ok(batch) = inbox.records.try_recv() {
        if let Some(a) = agg.as_mut() {
            add_batch(a, &batch);
        }
    }
    if let Some(a) = agg.as_mut() {
        if let Err(e) = a.finish() {
            log::error!("flow logs: final delivery: {e}");
        }
        publish_flowlog_stats(&board.stats, a);
    }
}

fn publish_flowlog_stats(board: &StatsBoard, a: &flowlog::Aggregator) {
    if let Ok(mut f) = board.flow_logs.lock() {
        *f = a.stats().into_iter().map(FlowLogCounters::from).collect();
    }
}

/// `Appliance.Workers`' socket and loop settings, checked before anything is bound.
#[derive(Debug, PartialEq)]
struct Settings {
    mode: XdpMode,
    poll: Poll,
    batch: usize,
    ring_size: u32,
}

fn settings(w: &WorkersConfig) -> Result<Settings, String> {
    let mode = match w.xdp_mode.as_deref().unwrap_or("auto") {
        "auto" => XdpMode::Auto,
        "skb" => XdpMode::Skb,
        "driver" => XdpMode::Driver,
        other => return Err(format!("Appliance.Workers.XdpMode {other:?}: use auto, skb or driver")),
    };
    let poll = match w.poll.as_deref().unwrap_or("adaptive") {
        "adaptive" => Poll::Adaptive,
        "busy" => Poll::Busy,
        other => return Err(format!("Appliance.Workers.Poll {other:?}: use adaptive or busy")),
    };
    let batch = w.batch_size.unwrap_or(64);
    if !(1..=256).contains(&batch) {
        return Err(format!("Appliance.Workers.BatchSize {batch}: use 1 to 256"));
    }
    let ring_size = w.ring_size.unwrap_or(4096);
    if !(64..=16384).contains(&ring_size) || !ring_size.is_power_of_two() {
        return Err(format!("Appliance.Workers.RingSize {ring_size}: use a power of two from 64 to 16384"));
    }
    Ok(Settings { mode, poll, batch, ring_size })
}

/// Binds the ports and starts the workers and the flow-log thread.
pub fn start(
    checked: &Checked,
    tables: ArcSwap<Tables>,
    state_dir: &Path,
) -> Result<(Arc<Shared>, DataplaneHandle), String> {
    let w = &checked.config.appliance.workers;
    let Settings { mode, poll, batch, ring_size } = settings(w)?;
    if checked.ports.is_empty() {
        return Err(
            "the config has no Appliance.Ports: nothing to bind (use --no-dataplane for the management plane alone)"
                .into(),
        );
    }
    let facts: Vec<PortFacts> =
        checked.ports.iter().map(|p| port_facts(&p.name, &p.interface)).collect::<Result<_, _>>()?;
    let queues = facts.iter().map(|f| f.rx_queues).min().unwrap_or(1);
    let cores: Vec<usize> = if w.cores.is_empty() {
        core_affinity::get_core_ids().map(|c| c.into_iter().map(|c| c.id).collect()).unwrap_or_default()
    } else {
        w.cores.clone()
    };
    let count = w.count.unwrap_or_else(|| queues.min(cores.len().max(1)));
    if count == 0 || count > queues {
        return Err(format!(
            "Appliance.Workers.Count {count}: the ports have {queues} receive queue(s) each (one worker serves one queue of every port)"
        ));
    }
    for f in &facts {
        let rss = match f.rss_symmetric {
            Some(true) => "symmetric RSS",
            Some(false) => {
                "RSS NOT symmetric (replies may land on another queue: they are handed to their flow's core)"
            }
            None => "no RSS (the sender's flow hash picks the queue)",
        };
        let line =
            format!("port {}: {} driver={} queues={} mtu={} {rss}", f.port, f.interface, f.driver, f.rx_queues, f.mtu);
        log::info!("{line}");
        println!("vpcgated: {line}");
        if let Some(irqs) = irq_advice(f, &cores[..count.min(cores.len())]) {
            log::info!("port {}: {irqs}", f.port);
            println!("vpcgated: port {}: {irqs}", f.port);
        }
    }

    let (records_tx, records_rx) = record_channels();
    let (config_tx, config_rx) = bounded::<Checked>(16);
    let mut job_txs = Vec::new();
    let mut job_rxs = Vec::new();
    for _ in 0..count {
        let (tx, rx) = bounded::<TraceJob>(16);
        job_txs.push(tx);
        job_rxs.push(rx);
    }
    let shared = Arc::new(Shared::new(tables, count, Some(Box::new(HostTracer { jobs: job_txs }))));
    let mesh = Mesh::new(count, 4096);
    let port_names: Vec<String> = checked.ports.iter().map(|p| p.name.clone()).collect();
    // Rings of 4096 by default: room for a TCP burst while the core is busy elsewhere
    // (on a VM the generator and the hosts share it); 1024 dropped frames under iperf3.
    let af_cfg = AfXdpConfig { mode, zero_copy: w.zero_copy.unwrap_or(true), ring_size, ..AfXdpConfig::default() };
    // A frame must fit in one UMEM frame after the kernel's headroom, with room for
    // two VLAN tags: a larger MTU would be dropped by the kernel, silently.
    let room = af_cfg.frame_size - dataplane::port::afxdp::XDP_HEADROOM;
    for f in &facts {
        if f.mtu + 22 > room {
            return Err(format!(
                "port {}: {} has MTU {}, but a frame must fit in {room} bytes (MTU at most {}): `ip link set dev {} mtu 1500`",
                f.port,
                f.interface,
                f.mtu,
                room - 22,
                f.interface
            ));
        }
    }
    let ct = checked.config.appliance.conntrack;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
    let mut workers = Vec::new();
    for (i, jobs) in job_rxs.into_iter().enumerate() {
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let specs: Vec<PortSpec> = checked
            .ports
            .iter()
            .enumerate()
            .map(|(p, port)| PortSpec::new(p as u16, &port.interface, i as u32))
            .collect();
        let (shared, mesh, ready, records, af_cfg, port_names) =
            (shared.clone(), mesh.clone(), ready_tx.clone(), records_tx.clone(), af_cfg.clone(), port_names.clone());
        let handle = std::thread::Builder::new()
            .name(format!("vpcgate-w{i}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                let mut io = match AfXdpIo::new(&af_cfg, &specs) {
                    Ok(io) => io,
                    Err(e) => {
                        let _ = ready.send(Err(format!("worker {i}: {e}")));
                        return;
                    }
                };
                let _ = ready.send(Ok(format!(
                    "worker {i} on core {}: {}",
                    core.map_or("any".into(), |c| c.to_string()),
                    io.report()
                )));
                let mut pipeline =
                    Pipeline::new(PipelineConfig { conntrack_entries: ct.max_entries, ..PipelineConfig::default() });
                let mut host = Host {
                    tables: arc_swap::Cache::new(Published(shared.clone())),
                    shared,
                    records,
                    jobs,
                    worker: i,
                    core,
                    port_names,
                    queue: i as u32,
                    last_publish: Instant::now(),
                };
                let cfg = WorkerConfig { index: i, batch, poll, housekeeping: Duration::from_millis(5) };
                run_worker(&mut io, &mut pipeline, &mut host, &mesh, &cfg);
                for k in io.kernel_stats() {
                    log::info!(
                        "worker {i} port {} queue {}: kernel rx_dropped={} rx_ring_full={} fill_ring_empty={} tx_ring_empty={}",
                        k.port, k.queue, k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty, k.tx_ring_empty
                    );
                }
                // Dropping `io` detaches the XDP programs.
            })
            .map_err(|e| format!("starting worker {i}: {e}"))?;
        workers.push(handle);
    }
    drop(ready_tx);
    drop(records_tx);
    let mut failure = None;
    for _ in 0..count {
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(report)) => {
                for line in report.lines() {
                    log::info!("{line}");
                    println!("vpcgated: {line}");
                }
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert("a worker did not start within 30 s".into());
            }
        }
    }
    if let Some(e) = failure {
        shared.stop.store(true, Ordering::SeqCst);
        for w in workers {
            let _ = w.join();
        }
        return Err(e);
    }
    let root = flow_log_root(checked, state_dir);
    let first = checked.clone();
    let board = shared.clone();
    let flowlog = std::thread::Builder::new()
        .name("vpcgate-flowlog".into())
        .spawn(move || flowlog_thread(first, root, records_rx, config_rx, board))
        .map_err(|e| format!("starting the flow-log thread: {e}"))?;
    Ok((shared.clone(), DataplaneHandle { shared, workers, flowlog: Some(flowlog), config_tx }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(json: &str) -> WorkersConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn worker_settings_default_and_refuse_what_cannot_work() {
        let d = settings(&workers("{}")).unwrap();
        assert_eq!(d, Settings { mode: XdpMode::Auto, poll: Poll::Adaptive, batch: 64, ring_size: 4096 });
        let s = settings(&workers(r#"{"XdpMode": "skb", "Poll": "busy", "BatchSize": 256, "RingSize": 1024}"#));
        assert_eq!(s.unwrap(), Settings { mode: XdpMode::Skb, poll: Poll::Busy, batch: 256, ring_size: 1024 });
        for (bad, field) in [
            (r#"{"RingSize": 1000}"#, "RingSize 1000"),
            (r#"{"RingSize": 32}"#, "RingSize 32"),
            (r#"{"RingSize": 32768}"#, "RingSize 32768"),
            (r#"{"BatchSize": 0}"#, "BatchSize 0"),
            (r#"{"BatchSize": 257}"#, "BatchSize 257"),
            (r#"{"Poll": "sometimes"}"#, "Poll \"sometimes\""),
            (r#"{"XdpMode": "native"}"#, "XdpMode \"native\""),
        ] {
            let e = settings(&workers(bad)).unwrap_err();
            assert!(e.starts_with(&format!("Appliance.Workers.{field}")), "{bad}: {e}");
        }
    }
}
