pub mod harness;
pub mod small;
pub mod three_tier;
