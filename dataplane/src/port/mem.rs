//! In-memory ports: frames queued by a test or benchmark, frames sent collected per
//! port. Buffers are allocated once and recycled.

use std::collections::VecDeque;

use super::{FrameHandle, Io, RxFrame};
use crate::tables::PortId;

pub const BUFFER_SIZE: usize = 2048;

pub struct MemIo {
    buffers: Vec<Vec<u8>>,
    free: Vec<usize>,
    pending: VecDeque<RxFrame>,
    /// Frames sent, per port, in order.
    pub sent: Vec<Vec<Vec<u8>>>,
    /// Keep sent frames (tests) or only count them (benchmarks).
    pub keep_sent: bool,
    pub sent_count: u64,
}

impl MemIo {
    pub fn new(ports: usize, buffers: usize) -> MemIo {
        MemIo {
            buffers: vec![vec![0; BUFFER_SIZE]; buffers],
            free: (0..buffers).rev().collect(),
            pending: VecDeque::new(),
            sent: vec![Vec::new(); ports],
            keep_sent: true,
            sent_count: 0,
        }
    }

    /// Queues a frame as received on `port`; false if no buffer is free or it is too big.
    pub fn inject(&mut self, port: PortId, frame: &[u8]) -> bool {
        if frame.len() > BUFFER_SIZE {
            return false;
        }
        let Some(i) = self.free.pop() else {
            return false;
        };
        self.buffers[i][..frame.len()].copy_from_slice(frame);
        self.pending.push_back(RxFrame { handle: FrameHandle(i as u64), len: frame.len(), port, time: None });
        true
    }
}

impl Io for MemIo {
    fn rx(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize {
        let n = max.min(self.pending.len());
        out.extend(self.pending.drain(..n));
        n
    }
    fn buffer(&mut self, h: FrameHandle) -> &mut [u8] {
        &mut self.buffers[h.0 as usize]
    }
    fn tx(&mut self, port: PortId, h: FrameHandle, head: usize, len: usize) {
        self.sent_count += 1;
        if self.keep_sent {
            let frame = self.buffers[h.0 as usize][head..head + len].to_vec();
            self.sent[port as usize].push(frame);
        }
        self.free.push(h.0 as usize);
    }
    fn release(&mut self, h: FrameHandle) {
        self.free.push(h.0 as usize);
    }
    fn alloc(&mut self) -> Option<FrameHandle> {
        self.free.pop().map(|i| FrameHandle(i as u64))
    }
    fn flush(&mut self) {}
}
