//! Running the pipeline over ports: batches, run to completion, one worker per core.
//!
//! - [`run_batch`]: one batch from a port set, for tools that drive the pipeline
//!   themselves (replay).
//! - [`run_worker`]: a pinned worker's loop: handed-over frames, a receive batch,
//!   the pipeline, transmit, flow records out, adaptive back-off when idle.
//!
//! Flow ownership: a flow's conntrack entries live on one core, the one its
//! [`owner_key`] picks. A frame that arrives on another core (no symmetric RSS, or
//! a reply hashed differently by the sender) is copied to its owner through a
//! bounded ring ([`Mesh`]); nothing blocks, a full ring drops and counts.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use flowlog::FlowRecord;
use hdrhistogram::Histogram;

use crate::accounting::{FinishedFlow, RecordBatch};
use crate::conntrack::Nanos;
use crate::explain::Step;
use crate::pipeline::{Frame, Outcome, Pipeline, Verdict};
use crate::port::{FrameHandle, Io, RxFrame};
use crate::tables::{PortId, Tables};
use crate::wire::{self, IcmpMsg, Kind, L4};

/// Scratch space a batch loop reuses, so batches allocate nothing.
#[derive(Default)]
pub struct BatchScratch {
    rx: Vec<RxFrame>,
    steps: Vec<Step>,
    /// Collect every frame's explanation (replay `--explain`); off on the wire.
    pub explain: bool,
}

impl BatchScratch {
    pub fn new(batch: usize) -> BatchScratch {
        BatchScratch { rx: Vec::with_capacity(batch), steps: Vec::new(), explain: false }
    }
}

/// Receives up to `max` frames from `io`, runs each through the pipeline, sends or
/// releases it, and flushes. `now` stamps frames whose port has no timestamp.
/// `seen` is told every frame's outcome (and its explanation, when asked for).
/// Returns how many frames were handled.
pub fn run_batch<I: Io>(
    io: &mut I,
    pipeline: &mut Pipeline,
    tables: &Tables,
    now: Nanos,
    scratch: &mut BatchScratch,
    max: usize,
    mut seen: impl FnMut(&RxFrame, &Outcome, &[Step]),
) -> usize {
    scratch.rx.clear();
    let n = io.rx(&mut scratch.rx, max);
    for f in scratch.rx.iter() {
        let mut frame = Frame { buf: io.buffer(f.handle), len: f.len, port: f.port, time: f.time.unwrap_or(now) };
        scratch.steps.clear();
        let outcome = if scratch.explain {
            pipeline.process_frame(tables, &mut frame, &mut scratch.steps)
        } else {
            pipeline.process_frame(tables, &mut frame, &mut ())
        };
        seen(f, &outcome, &scratch.steps);
        send_or_release(io, f.handle, f.port, &outcome);
    }
    io.flush();
    n
}

#[inline]
fn send_or_release<I: Io>(io: &mut I, h: FrameHandle, ingress: PortId, o: &Outcome) {
    match o.verdict {
        Verdict::Forward(port) => io.tx(port, h, o.head, o.len),
        Verdict::Reply => io.tx(ingress, h, o.head, o.len),
        Verdict::Reject(_) | Verdict::Drop(_) => io.release(h),
    }
}

/// Which core owns a frame's flow: a symmetric key over (addresses, protocol) —
/// ports are left out so every fragment of a datagram goes where its first one went —
/// and, for an ICMP error, the flow it quotes. `None`: any core may take it (ARP,
/// neighbour discovery, non-IP, malformed).
pub fn owner_key(frame: &[u8]) -> Option<u64> {
    let pkt = wire::parse(frame).ok()?;
    let Kind::Ip(ip) = pkt.kind else { return None };
    let (a, b, proto) = match ip.l4 {
        L4::Icmp(icmp) => match icmp.msg {
            IcmpMsg::Error { quote } => match wire::quoted_flow(frame, ip.family, quote) {
                Some(q) => (q.src.bits, q.dst.bits, q.proto),
                None => (ip.src, ip.dst, ip.proto),
            },
            IcmpMsg::NeighborSolicit { .. } | IcmpMsg::NeighborDiscovery => return None,
            _ => (ip.src, ip.dst, ip.proto),
        },
        _ => (ip.src, ip.dst, ip.proto),
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(32);
    let mut h =
        fold(lo).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ fold(hi).wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ proto as u64;
    h ^= h >> 29;
    Some(h.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32))
}

pub const HANDOFF_FRAME: usize = 2048;

/// A frame on its way to the worker that owns its flow.
pub struct Handoff {
    pub port: PortId,
    pub len: u16,
    pub data: Box<[u8; HANDOFF_FRAME]>,
}

/// The rings between workers: one inbox per worker, and a pool of buffers
/// allocated once (a hand-over copies a frame, it never allocates).
pub struct Mesh {
    inboxes: Vec<ArrayQueue<Handoff>>,
    pool: ArrayQueue<Box<[u8; HANDOFF_FRAME]>>,
}

impl Mesh {
    pub fn new(workers: usize, depth: usize) -> Arc<Mesh> {
        let pool = ArrayQueue::new(workers * depth);
        for _ in 0..workers * depth {
            let _ = pool.push(Box::new([0u8; HANDOFF_FRAME]));
        }
        Arc::new(Mesh { inboxes: (0..workers).map(|_| ArrayQueue::new(depth)).collect(), pool })
    }
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }
}

/// How an idle worker waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Never sleeps: lowest latency, a whole core busy.
    Busy,
    /// Spins for [`ADAPTIVE_SPIN`] after the last frame, then sleeps in the kernel
    /// until a frame arrives (or a millisecond passes, for hand-overs and timers).
    Adaptive,
}

/// How long an adaptive worker keeps spinning after its last frame. Going to sleep
/// and being woken costs the sender a wakeup and the worker microseconds, so a short
/// lull in traffic (a generator's or a TCP window's) is spun through; a truly idle
/// worker sleeps after this and keeps sleeping until traffic returns.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(200);

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub index: usize,
    pub batch: usize,
    pub poll: Poll,
    /// How often the host is called between batches (control, counters).
    pub housekeeping: Duration,
}

/// What a worker counts beside the pipeline's own counters.
#[derive(Clone, Debug)]
pub struct WorkerTelemetry {
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub handoff_dropped: u64,
    pub batches: u64,
    pub records_sent: u64,
    pub records_skipped: u64,
    pub batch_sizes: Histogram<u64>,
    pub batch_nanos: Histogram<u64>,
    /// Per port: (rx frames, rx bytes, tx frames, tx bytes).
    pub ports: Vec<[u64; 4]>,
    /// The port set's own counters, as of the last housekeeping.
    pub io: crate::port::IoCounters,
}

impl WorkerTelemetry {
    pub fn new(ports: usize) -> WorkerTelemetry {
        WorkerTelemetry {
            handoff_out: 0,
            handoff_in: 0,
            handoff_dropped: 0,
            batches: 0,
            records_sent: 0,
            records_skipped: 0,
            batch_sizes: Histogram::new_with_bounds(1, 4096, 2).expect("histogram bounds"),
            batch_nanos: Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds"),
            ports: vec![[0; 4]; ports],
            io: Default::default(),
        }
    }
}

/// The world around a worker.
pub trait WorkerHost {
    /// The current table snapshot (picked up between batches).
    fn tables(&self) -> Arc<Tables>;
    /// The current snapshot if it is not `current`. Asked before every batch, so
    /// it should cost one atomic load when nothing changed; the default clones.
    fn fresh_tables(&mut self, current: &Arc<Tables>) -> Option<Arc<Tables>> {
        let t = self.tables();
        (!Arc::ptr_eq(&t, current)).then_some(t)
    }
    fn stopping(&self) -> bool;
    /// The worker moved from table generation `from` to `to` (between batches, only
    /// on a change): for measuring how fast snapshots reach the workers.
    fn switched(&mut self, _from: u64, _to: u64) {}
    /// The appliance clock, nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
    /// Hands over flow records; gives them back if they cannot be taken now.
    fn records(&mut self, records: RecordBatch) -> Result<(), RecordBatch>;
    /// A flows vector the flow-log thread has emptied, if one came back (see
    /// [`Pipeline::recycle_flows`]). Asked only while the pipeline holds none.
    fn spare_flows(&mut self) -> Option<Vec<FinishedFlow>> {
        None
    }
    /// Called between batches every `housekeeping`: control requests, counters.
    fn housekeeping(&mut self, tables: &Tables, pipeline: &mut Pipeline, telemetry: &WorkerTelemetry);
}

/// Hands a pipeline's finished flow records on (to the flow-log thread) without ever
/// blocking: what the receiver cannot take now is counted and reported as SKIPDATA
/// records with the next hand-off. The worker loop uses it once per batch; benchmarks
/// use it to hand records on exactly as a worker does.
#[derive(Default)]
pub struct RecordHandoff {
    skipped: Skipped,
    /// Flow records handed on.
    pub sent: u64,
    /// Flow records the receiver could not take (reported as SKIPDATA).
    pub lost: u64,
}

impl RecordHandoff {
    /// Passes on whatever the pipeline finished (nothing to do, and no call to
    /// `send`, in the common case of no finished interval). False when the receiver
    /// could not take the records (they are counted in `lost`).
    #[inline]
    pub fn pass(&mut self, pipeline: &mut Pipeline, send: impl FnOnce(RecordBatch) -> Result<(), RecordBatch>) -> bool {
        if !pipeline.has_records() && self.skipped.enis.is_empty() {
            return true;
        }
        // The interval's flows travel in the vector they were gathered in; SKIPDATA
        // for earlier losses rides along.
        let mut batch = pipeline.take_records();
        let sent = batch.len() as u64;
        if !self.skipped.enis.is_empty() {
            batch.made.extend(self.skipped.take());
        }
        match send(batch) {
            Ok(()) => {
                self.sent += sent;
                true
            }
            Err(lost) => {
                self.lost += lost.spans().filter(|s| s.traffic).count() as u64;
                self.skipped.note(&lost);
                false
            }
        }
    }
}

/// Records the channel could not take: reported as SKIPDATA with the next batch.
#[derive(Default)]
struct Skipped {
    enis: Vec<Arc<flowlog::EniMeta>>,
    start: u64,
    end: u64,
}

impl Skipped {
    fn note(&mut self, lost: &RecordBatch) {
        for s in lost.spans() {
            if !self.enis.iter().any(|m| Arc::ptr_eq(m, s.eni) || m.interface_id == s.eni.interface_id) {
                self.enis.push(s.eni.clone());
            }
            self.start = if self.start == 0 { s.start } else { self.start.min(s.start) };
            self.end = self.end.max(s.end);
        }
    }
    fn take(&mut self) -> Vec<FlowRecord> {
        let (start, end) = (self.start, self.end);
        self.start = 0;
        self.end = 0;
        self.enis.drain(..).map(|m| crate::accounting::skipdata(&m, start, end)).collect()
    }
}

/// A worker's loop, until the host says stop. The flow records of the last,
/// unfinished interval are handed over before it returns.
pub fn run_worker<I: Io, H: WorkerHost>(
    io: &mut I,
    pipeline: &mut Pipeline,
    host: &mut H,
    mesh: &Mesh,
    cfg: &WorkerConfig,
) -> WorkerTelemetry {
    let mut tables = host.tables();
    let mut t = WorkerTelemetry::new(tables.ports.len());
    let mut rx: Vec<RxFrame> = Vec::with_capacity(cfg.batch);
    let mut handoff = RecordHandoff::default();
    let spin = ADAPTIVE_SPIN.as_nanos() as Nanos;
    let mut last_work: Nanos = 0;
    let housekeeping = cfg.housekeeping.as_nanos() as Nanos;
    let mut next_housekeeping = 0;
    let me = cfg.index;
    let workers = mesh.workers();
    // Per round: one atomic load (tables), the receive and one clock read; a batch
    // reads the clock once more at its end.
    while !host.stopping() {
        if let Some(next) = host.fresh_tables(&tables) {
            host.switched(tables.generation, next.generation);
            tables = next;
        }
        rx.clear();
        let n = io.rx(&mut rx, cfg.batch);
        let inbox = &mesh.inboxes[me];
        let busy = n > 0 || !inbox.is_empty();
        // Timers and interval ends go on with or without traffic.
        let now = host.now();
        pipeline.sync(&tables, now);
        let mut handled = n;
        if busy {
            last_work = now;
            // Frames other workers handed over: their flows are ours.
            while let Some(h) = inbox.pop() {
                t.handoff_in += 1;
                if let Some(fh) = io.alloc() {
                    let len = h.len as usize;
                    io.buffer(fh)[..len].copy_from_slice(&h.data[..len]);
                    let out = process(io, pipeline, &tables, fh, len, h.port, now, &mut t);
                    send_or_release(io, fh, h.port, &out);
                    handled += 1;
                } else {
                    t.handoff_dropped += 1;
                }
                let _ = mesh.pool.push(h.data);
            }

            for f in &rx {
                if workers > 1 {
                    if let Some(owner) = owner_key(&io.buffer(f.handle)[..f.len]).map(|k| (k % workers as u64) as usize)
                    {
                        if owner != me {
                            hand_over(io, mesh, owner, f, &mut t);
                            continue;
                        }
                    }
                }
                let out = process(io, pipeline, &tables, f.handle, f.len, f.port, f.time.unwrap_or(now), &mut t);
                send_or_release(io, f.handle, f.port, &out);
            }
        }
        // Sends what the batch queued; idle, collects completions and pending TX kicks.
        io.flush();

        handoff.pass(pipeline, |r| host.records(r));
        (t.records_sent, t.records_skipped) = (handoff.sent, handoff.lost);
        pipeline.restock_flows(|| host.spare_flows());

        let done = if busy { host.now() } else { now };
        if handled > 0 {
            t.batches += 1;
            let _ = t.batch_sizes.record(handled as u64);
            let _ = t.batch_nanos.record(done.saturating_sub(now).max(1));
        }
        if due(done, &mut next_housekeeping, housekeeping) {
            t.io = io.counters();
            host.housekeeping(&tables, pipeline, &t);
        }
        if !busy && cfg.poll == Poll::Adaptive {
            last_work = last_work.min(now); // the clock was set back
            if now - last_work > spin {
                io.wait_readable(Duration::from_millis(1));
            }
        }
    }
    // Hand over what the last interval accounted.
    pipeline.flush_accounting(&tables, host.now());
    if !handoff.pass(pipeline, |r| host.records(r)) {
        log::warn!("worker {me}: flow records of the last interval could not be handed over");
    }
    (t.records_sent, t.records_skipped) = (handoff.sent, handoff.lost);
    t.io = io.counters();
    host.housekeeping(&tables, pipeline, &t);
    t
}

/// Whether a periodic job is due at `now`, and if so when it is next. The appliance
/// clock is the wall clock: a step back of more than a period counts as due, so a
/// clock set back does not stall housekeeping until it catches up.
#[inline]
fn due(now: Nanos, next: &mut Nanos, period: Nanos) -> bool {
    if now >= *next || *next > now + period {
        *next = now + period;
        true
    } else {
        false
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn process<I: Io>(
    io: &mut I,
    pipeline: &mut Pipeline,
    tables: &Tables,
    h: FrameHandle,
    len: usize,
    port: PortId,
    now: Nanos,
    t: &mut WorkerTelemetry,
) -> Outcome {
    if let Some(c) = t.ports.get_mut(port as usize) {
        c[0] += 1;
        c[1] += len as u64;
    }
    let mut frame = Frame { buf: io.buffer(h), len, port, time: now };
    let out = pipeline.process_frame(tables, &mut frame, &mut ());
    let egress = match out.verdict {
        Verdict::Forward(p) => Some(p),
        Verdict::Reply => Some(port),
        _ => None,
    };
    if let Some(c) = egress.and_then(|p| t.ports.get_mut(p as usize)) {
        c[2] += 1;
        c[3] += out.len as u64;
    }
    out
}

fn hand_over<I: Io>(io: &mut I, mesh: &Mesh, owner: usize, f: &RxFrame, t: &mut WorkerTelemetry) {
    match mesh.pool.pop() {
        Some(mut data) if f.len <= HANDOFF_FRAME => {
            data[..f.len].copy_from_slice(&io.buffer(f.handle)[..f.len]);
            match mesh.inboxes[owner].push(Handoff { port: f.port, len: f.len as u16, data }) {
                Ok(()) => t.handoff_out += 1,
                Err(h) => {
                    t.handoff_dropped += 1;
                    let _ = mesh.pool.push(h.data);
                }
            }
        }
        Some(data) => {
            t.handoff_dropped += 1;
            let _ = mesh.pool.push(data);
        }
        None => t.handoff_dropped += 1,
    }
    io.release(f.handle);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, Flags, Host};

    #[test]
    fn owner_key_is_symmetric_and_ignores_ports() {
        let a = Host::new("02:00:00:00:00:01", "198.18.1.10");
        let b = Host::new("02:00:00:00:00:02", "198.19.0.1");
        let r = crate::addr::Mac::default();
        let fwd = testkit::tcp(&a, b.ip, r, 1000, 80, Flags::SYN, 1, 0, b"");
        let back = testkit::tcp(&b, a.ip, r, 80, 1000, Flags::SYN_ACK, 1, 2, b"");
        let other_ports = testkit::tcp(&a, b.ip, r, 2000, 443, Flags::SYN, 1, 0, b"");
        assert_eq!(owner_key(&fwd), owner_key(&back));
        assert_eq!(owner_key(&fwd), owner_key(&other_ports));
        let udp = testkit::udp(&a, b.ip, r, 1, 2, &[0; 200]);
        for frag in testkit::fragment(&udp, 64, 7) {
            assert_eq!(owner_key(&frag), owner_key(&testkit::udp(&a, b.ip, r, 9, 9, b"")), "fragments follow the flow");
        }
        // An ICMP error from a third host about the flow goes to the flow's owner.
        let router = Host::new("02:00:00:00:00:03", "198.19.9.9");
        let err = testkit::icmp_error(&router, a.ip, r, 11, 0, &fwd);
        assert_eq!(owner_key(&err), owner_key(&fwd));
        assert_eq!(owner_key(&testkit::arp_request(&a, "198.18.1.1".parse().unwrap())), None);
    }
}
