//! vpcgate's management plane: the EC2-shaped config model, its validation with EC2
//! error codes, compilation into the dataplane's tables, and the tools built on them.

pub mod api;
pub mod audit;
pub mod cli;
pub mod compile;
pub mod daemon;
pub mod dataplane_host;
pub mod error;
pub mod extension;
pub mod flowlogs;
pub mod logging;
pub mod metrics_http;
pub mod model;
pub mod publish;
pub mod replay;
pub mod stats;
pub mod store;
pub mod top;
pub mod trace;
pub mod validate;
