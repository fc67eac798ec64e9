//! Running the pipeline over ports: one batch at a time, run to completion.

use crate::conntrack::Nanos;
use crate::pipeline::{Frame, Outcome, Pipeline, Verdict};
use crate::port::{Io, RxFrame};
use crate::tables::Tables;

/// Receives up to `max` frames from `io`, runs each through the pipeline, sends or
/// releases it, and flushes. `now` stamps frames whose port has no timestamp.
/// `seen` is told every frame's outcome (replay writes verdicts from it). Returns how
/// many frames were handled. `rx` is scratch space, reused between batches.
pub fn run_batch<I: Io>(
    io: &mut I,
    pipeline: &mut Pipeline,
    tables: &Tables,
    now: Nanos,
    rx: &mut Vec<RxFrame>,
    max: usize,
    mut seen: impl FnMut(&RxFrame, &Outcome),
) -> usize {
    rx.clear();
    let n = io.rx(rx, max);
    for f in rx.iter() {
        let mut frame = Frame { buf: io.buffer(f.handle), len: f.len, port: f.port, time: f.time.unwrap_or(now) };
        let outcome = pipeline.process_frame(tables, &mut frame, &mut ());
        seen(f, &outcome);
        match outcome.verdict {
            Verdict::Forward(port) => io.tx(port, f.handle, outcome.head, outcome.len),
            Verdict::Reply => io.tx(f.port, f.handle, outcome.head, outcome.len),
            Verdict::Reject(_) | Verdict::Drop(_) => io.release(f.handle),
        }
    }
    io.flush();
    n
}
