//! vpcgate's packet path: AWS VPC security semantics (network ACLs, security groups,
//! connection tracking) applied to Ethernet frames, run to completion per core.
//!
//! The crate never sees JSON, sockets or files: the management plane hands it compiled
//! [`tables::Tables`] and reads its counters.

pub mod accounting;
pub mod addr;
pub mod conntrack;
pub mod explain;
pub mod flowcache;
pub mod forward;
pub mod fragment;
pub mod neighbor;
pub mod pipeline;
pub mod policy;
pub mod port;
pub mod prefetch;
pub mod stats;
pub mod tables;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod topflows;
pub mod wire;
pub mod worker;
