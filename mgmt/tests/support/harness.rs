//! Drives the real pipeline with a config, a controlled clock and live config
//! changes (compiled and swapped between packets, as the daemon does).

#![allow(dead_code)]

use dataplane::pipeline::{Frame, Outcome, Pipeline, PipelineConfig, Verdict};
use dataplane::tables::Tables;
use mgmt::compile::Compiler;
use mgmt::model::Config;
use mgmt::validate::check;

pub struct Harness {
    pub config: Config,
    pub compiler: Compiler,
    pub tables: Tables,
    pub pipeline: Pipeline,
    /// Appliance clock, nanoseconds.
    pub now: u64,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        Harness::with_pipeline(config, PipelineConfig::default())
    }

    pub fn with_pipeline(config: Config, pc: PipelineConfig) -> Harness {
        let checked = check(&config).unwrap_or_else(|e| panic!("config rejected: {e}"));
        let mut compiler = Compiler::new();
        let tables = compiler.compile(&checked);
        Harness {
            config: checked.config,
            compiler,
            tables,
            pipeline: Pipeline::new(pc),
            now: 1_795_305_600_000_000_000,
        }
    }

    pub fn from_file(path: &str) -> Harness {
        Harness::new(Config::from_json(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    /// Changes the config, validates, compiles and publishes it.
    pub fn update(&mut self, change: impl FnOnce(&mut Config)) {
        let mut next = self.config.clone();
        change(&mut next);
        let checked = check(&next).unwrap_or_else(|e| panic!("updated config rejected: {e}"));
        self.tables = self.compiler.compile(&checked);
        self.tables.published_at = self.now;
        self.config = checked.config;
    }

    pub fn advance_secs(&mut self, s: f64) {
        self.now += (s * 1e9) as u64;
    }

    /// Sends one frame in on `port` at the current time.
    pub fn send(&mut self, port: &str, frame: &[u8]) -> Outcome {
        let port = self.tables.port_by_name(port).unwrap_or_else(|| panic!("no port {port}"));
        let mut buf = vec![0u8; frame.len().max(2048)];
        buf[..frame.len()].copy_from_slice(frame);
        let mut f = Frame { buf: &mut buf, len: frame.len(), port, time: self.now };
        self.pipeline.process_frame(&self.tables, &mut f, &mut ())
    }

    /// Sends and returns the verdict as `forward:PORT`, `reject:HOP`, `drop:REASON`, `reply`.
    pub fn verdict(&mut self, port: &str, frame: &[u8]) -> String {
        let o = self.send(port, frame);
        describe(&self.tables, o.verdict)
    }

    /// The explanation of what would happen to a frame now (changes nothing).
    pub fn explain(&self, port: &str, frame: &[u8]) -> Vec<String> {
        let port = self.tables.port_by_name(port).unwrap();
        let mut steps = Vec::new();
        let mut plan = dataplane::pipeline::Plan::default();
        self.pipeline.decide(&self.tables, frame, port, self.now, &mut steps, &mut plan);
        steps.iter().map(|s| s.describe(&self.tables)).collect()
    }
}

pub fn describe(t: &Tables, v: Verdict) -> String {
    match v {
        Verdict::Forward(p) => format!("forward:{}", t.ports[p as usize].name),
        Verdict::Reply => "reply".into(),
        Verdict::Reject(h) => format!("reject:{}", h.name()),
        Verdict::Drop(r) => format!("drop:{}", r.name()),
    }
}
