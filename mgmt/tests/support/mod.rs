pub mod harness;
pub mod live;
pub mod small;
pub mod three_tier;
