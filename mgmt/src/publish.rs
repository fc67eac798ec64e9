//! Publishing table snapshots, and measuring how long a change takes to reach every
//! worker: from the moment it is durable (the earliest it may be acknowledged; the
//! answer itself is written after the snapshot is stored, so the client's ack is
//! never earlier) until the last worker judges frames with tables at least that new.
//!
//! Workers never block on this: each one, when it picks up a newer snapshot between
//! batches, counts itself off in a per-generation slot with one compare-and-swap;
//! the last one to switch computes the latency and hands it over through a bounded
//! channel. Readers (`DescribeStats`) fold what arrived into a histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::tables::Tables;
use hdrhistogram::Histogram;

use crate::compile::Compiler;
use crate::validate::Checked;

/// Generations in flight that can be told apart: a worker more than this many
/// generations behind does not count for the ones it skipped past the window.
const SLOTS: usize = 4096;
/// Low bits of a slot's state: workers still to switch.
const REMAINING_BITS: u32 = 16;

struct Slot {
    /// `generation << 16 | workers still to switch`: one word, so a worker's
    /// compare-and-swap can never count itself off a slot reused for a later generation.
    state: AtomicU64,
    /// When the generation became durable, and when it was stored for the workers,
    /// nanoseconds since [`PublishLatency::epoch`].
    durable: AtomicU64,
    stored: AtomicU64,
}

pub struct PublishLatency {
    workers: u64,
    epoch: Instant,
    slots: Box<[Slot]>,
    /// (worker, stored -> that worker switched) for every worker, and `u64::MAX`
    /// with durable -> the last worker switched.
    done_tx: Sender<(u64, u64)>,
    done_rx: Receiver<(u64, u64)>,
    histograms: Mutex<Histograms>,
}

/// Durable -> every worker switched, the compile step alone, and per worker the
/// time from the snapshot's store to its pick-up (nanoseconds).
#[derive(Clone)]
pub struct Histograms {
    pub publish: Histogram<u64>,
    pub compile: Histogram<u64>,
    pub pickup: Vec<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

impl PublishLatency {
    /// For `workers` workers (0: no dataplane, nothing is measured).
    pub fn new(workers: usize) -> PublishLatency {
        let (done_tx, done_rx) = bounded(SLOTS * (workers + 1));
        PublishLatency {
            workers: workers as u64,
            epoch: Instant::now(),
            slots: (0..SLOTS)
                .map(|_| Slot { state: AtomicU64::new(0), durable: AtomicU64::new(0), stored: AtomicU64::new(0) })
                .collect(),
            done_tx,
            done_rx,
            histograms: Mutex::new(Histograms {
                publish: histogram(),
                compile: histogram(),
                pickup: (0..workers).map(|_| histogram()).collect(),
            }),
        }
    }

    fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Called just before `generation` is stored for the workers.
    pub fn begin(&self, generation: u64, durable: Instant) {
        if self.workers == 0 {
            return;
        }
        let slot = &self.slots[generation as usize % SLOTS];
        slot.durable.store(self.since_epoch(durable), Ordering::Relaxed);
        slot.stored.store(self.since_epoch(Instant::now()), Ordering::Relaxed);
        // Release: a worker that sees the state sees the time.
        slot.state.store(generation << REMAINING_BITS | self.workers, Ordering::Release);
    }

    /// A worker moved from tables `from` to tables `to`: it now uses every
    /// generation in between too. Called between batches, only on a change.
    pub fn switched(&self, worker: usize, from: u64, to: u64) {
        if self.workers == 0 || to <= from {
            return;
        }
        let first = (from + 1).max(to.saturating_sub(SLOTS as u64 - 1));
        for g in first..=to {
            let slot = &self.slots[g as usize % SLOTS];
            let mut s = slot.state.load(Ordering::Acquire);
            loop {
                let left = s & ((1 << REMAINING_BITS) - 1);
                if s >> REMAINING_BITS != g || left == 0 {
                    break;
                }
                match slot.state.compare_exchange_weak(s, s - 1, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        let now = self.since_epoch(Instant::now());
                        // Full only if nobody read the figures for 4096 changes: dropped.
                        if g == to {
                            let stored = slot.stored.load(Ordering::Relaxed);
                            let _ = self.done_tx.try_send((worker as u64, now.saturating_sub(stored)));
                        }
                        if left == 1 {
                            let durable = slot.durable.load(Ordering::Relaxed);
                            let _ = self.done_tx.try_send((u64::MAX, now.saturating_sub(durable)));
                        }
                        break;
                    }
                    Err(now) => s = now,
                }
            }
        }
    }

    pub fn record_compile(&self, nanos: u64) {
        if let Ok(mut h) = self.histograms.lock() {
            let _ = h.compile.record(nanos.max(1));
        }
    }

    /// Everything measured so far.
    pub fn histograms(&self) -> Histograms {
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        while let Ok((who, took)) = self.done_rx.try_recv() {
            let target = if who == u64::MAX { Some(&mut h.publish) } else { h.pickup.get_mut(who as usize) };
            if let Some(target) = target {
                let _ = target.record(took.max(1));
            }
        }
        h.clone()
    }
}

/// Compiles every accepted config and stores the snapshot for the workers.
pub struct Publisher {
    pub compiler: Compiler,
    pub shared: Arc<crate::daemon::Shared>,
}

impl Publisher {
    /// `durable`: when the change was saved (where the latency is measured from).
    pub fn publish(&mut self, c: &Checked, durable: Instant) {
        let started = Instant::now();
        let mut tables: Tables = self.compiler.compile(c);
        tables.published_at = crate::extension::now_nanos();
        let latency = &self.shared.publish;
        latency.record_compile(started.elapsed().as_nanos() as u64);
        latency.begin(tables.generation, durable);
        self.shared.tables.store(Arc::new(tables));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_worker_to_switch_reports_once_and_skipped_generations_count() {
        let p = PublishLatency::new(2);
        let t = Instant::now();
        p.begin(5, t);
        p.begin(6, t);
        p.switched(0, 4, 5);
        assert_eq!(p.histograms().publish.len(), 0, "one worker of two has switched");
        // The second worker jumps straight to 6: it uses 5's changes too.
        p.switched(1, 4, 6);
        assert_eq!(p.histograms().publish.len(), 1, "5 done");
        p.switched(0, 5, 6);
        p.switched(0, 5, 6);
        assert_eq!(p.histograms().publish.len(), 2, "6 done, counted once");
        // A generation never begun (the first tables) is ignored.
        p.switched(0, 0, 1);
        assert_eq!(p.histograms().publish.len(), 2);
    }

    #[test]
    fn a_slot_reused_for_a_later_generation_is_not_counted_off_by_a_late_worker() {
        let p = PublishLatency::new(1);
        let t = Instant::now();
        p.begin(7 + SLOTS as u64, t);
        p.switched(0, 6, 7);
        assert_eq!(p.histograms().publish.len(), 0);
        p.switched(0, 7, 7 + SLOTS as u64);
        assert_eq!(p.histograms().publish.len(), 1);
    }
}
