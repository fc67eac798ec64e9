//! Ports: where frames come from and go to. One trait over batches of frames, with
//! three implementations running the same pipeline: AF_XDP (the wire), pcapng files
//! (replay) and memory (tests, benchmarks).

#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod mem;
pub mod pcap;

use crate::conntrack::Nanos;
use crate::tables::PortId;

/// A frame buffer owned by an [`Io`]; what it means (UMEM address, slot index) is
/// the implementation's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHandle(pub u64);

/// A received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    pub handle: FrameHandle,
    pub len: usize,
    pub port: PortId,
    /// When it was received, for ports that know (captures); live ports leave it to
    /// the worker, which reads the clock once per batch.
    pub time: Option<Nanos>,
}

/// What a port set counted (for stats); zero where a port cannot tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Frames dropped because the transmit ring stayed full.
    pub tx_ring_full: u64,
    /// Frames the kernel dropped before we saw them (receive ring full, no free
    /// frame in the fill ring).
    pub rx_dropped: u64,
    /// Wakeups (system calls) made to send or receive.
    pub wakeups: u64,
}

/// The ports one worker serves, as batches. Every received handle must be given back
/// exactly once, by `tx` or `release`.
pub trait Io {
    /// Appends up to `max` received frames to `out`; returns how many.
    fn rx(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize;
    /// The whole buffer of a received frame (the frame is `[..len]`; the rest is room
    /// for a reply).
    fn buffer(&mut self, h: FrameHandle) -> &mut [u8];
    /// Queues `buffer(h)[head..head + len]` for sending on `port`.
    fn tx(&mut self, port: PortId, h: FrameHandle, head: usize, len: usize);
    /// Gives back a frame that is not sent.
    fn release(&mut self, h: FrameHandle);
    /// A free frame buffer to build a frame in (a frame handed over by another
    /// worker); `None` when all are in use.
    fn alloc(&mut self) -> Option<FrameHandle>;
    /// Sends what was queued and refills receive rings; once per batch.
    fn flush(&mut self);
    /// Waits until a frame may be received or `timeout` passes (an idle worker's
    /// back-off); true if one is ready. Call `flush` first.
    fn wait_readable(&mut self, timeout: std::time::Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
    /// Totals since the port set was opened.
    fn counters(&self) -> IoCounters {
        IoCounters::default()
    }
}
