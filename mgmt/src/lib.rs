//! vpcgate's management plane: the EC2-shaped config model, its validation with EC2
//! error codes, compilation into the dataplane's tables, and the tools built on them.

pub mod cli;
pub mod compile;
pub mod error;
pub mod model;
pub mod replay;
pub mod validate;
