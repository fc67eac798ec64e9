//! Benchmarks and generators.
