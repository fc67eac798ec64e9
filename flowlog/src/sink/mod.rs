//! Where flow-log records go. Every destination implements [`Sink`]:
//!
//! - [`S3DirSink`]: a local directory laid out like S3 delivery, as gzip text or Parquet;
//! - [`CloudWatchDirSink`]: one plain-text stream file per ENI, like CloudWatch Logs;
//! - [`SocketSink`]: newline-delimited records to a Unix or TCP socket.
//!
//! Sinks never block on a slow reader beyond the I/O they do themselves and never
//! panic on I/O errors: an error is counted in [`SinkStats`], returned, and the next
//! call tries again. Time comes from the caller (`now_unix`), so a replay of a capture
//! rotates files on the capture's clock.

mod cloudwatch;
mod counting;
mod gztext;
mod parquet;
mod publish;
mod s3dir;
mod socket;

pub use cloudwatch::{CloudWatchDirConfig, CloudWatchDirSink};
pub use s3dir::{FileFormat, S3DirConfig, S3DirSink, DEFAULT_MAX_FILE_BYTES};
pub use socket::{SocketConfig, SocketSink, SocketTarget};

use std::io;

use crate::record::FlowRecord;

/// Counters every sink keeps. All are totals since the sink was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records delivered: in a published file, or handed to the stream or socket.
    pub records: u64,
    /// Bytes delivered (compressed size for gzip and Parquet files).
    pub bytes: u64,
    /// Files published (S3-style sinks) or stream files created (CloudWatch-style).
    pub files: u64,
    /// I/O errors met (each also returned by the call that met it).
    pub errors: u64,
    /// Records lost: a full buffer, or a file or line given up after an I/O error.
    pub dropped: u64,
    /// Connections made (socket sink).
    pub connects: u64,
}

/// A flow-log destination.
pub trait Sink {
    /// Takes a batch of records (normally those of one aggregation interval).
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()>;

    /// Publishes whatever is due at `now_unix` (Unix seconds on the caller's clock).
    fn rotate_if_due(&mut self, now_unix: u64) -> io::Result<()>;

    /// Pushes buffered output as far as the destination allows without ending a file.
    fn flush(&mut self) -> io::Result<()>;

    /// Publishes or syncs everything written so far. The sink stays usable.
    fn close(&mut self) -> io::Result<()>;

    fn stats(&self) -> SinkStats;
}
