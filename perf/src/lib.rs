//! Benchmarks and traffic generators for vpcgate.

pub mod bench_config;
pub mod classbench;
