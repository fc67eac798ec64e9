//! Running the pipeline over ports: one batch at a time, run to completion.

use crate::conntrack::Nanos;
use crate::explain::Step;
use crate::pipeline::{Frame, Outcome, Pipeline, Verdict};
use crate::port::{Io, RxFrame};
use crate::tables::Tables;

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
        match outcome.verdict {
            Verdict::Forward(port) => io.tx(port, f.handle, outcome.head, outcome.len),
            Verdict::Reply => io.tx(f.port, f.handle, outcome.head, outcome.len),
            Verdict::Reject(_) | Verdict::Drop(_) => io.release(f.handle),
        }
    }
    io.flush();
    n
}
