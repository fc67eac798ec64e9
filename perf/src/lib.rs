//! Benchmarks and generators.

pub mod frames;
pub mod netns;
pub mod tool;
