//! AWS VPC Flow Log records, formats and sinks.
//!
//! - [`record`]: what the dataplane produces at the end of each aggregation interval;
//! - [`field`] and [`format`]: AWS's field catalogue and `${...}` formats, rendered
//!   as AWS renders them;
//! - [`destination`]: `LogDestination` ARNs;
//! - [`sink`]: the destinations records are delivered to.

pub mod aggregate;
pub mod destination;
pub mod field;
pub mod format;
pub mod record;
pub mod sink;
pub mod utc;

#[cfg(test)]
mod testdata;

pub use aggregate::{Aggregator, FlowLogSpec, LogStats, TrafficType};
pub use destination::{DestinationError, LogDestination};
pub use field::{Field, ParquetType, Value};
pub use format::{FormatError, LogFormat};
pub use record::{Action, AwsService, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};
pub use sink::{Sink, SinkStats};
