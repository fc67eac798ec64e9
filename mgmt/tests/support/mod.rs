pub mod harness;
pub mod three_tier;
