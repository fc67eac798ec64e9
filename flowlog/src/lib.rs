//! AWS VPC Flow Log records, formats and sinks.

pub mod record;

pub use record::{Action, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};
