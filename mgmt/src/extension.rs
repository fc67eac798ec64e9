//! vpcgate's own API actions, served by the daemon because they look at the
//! dataplane: `Trace` (judge a packet as the workers would), `Audit` (risky rules),
//! `DescribeStats` (counters). All read-only.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::api::{decode, Extension};
use crate::audit;
use crate::daemon::Shared;
use crate::error::Result;
use crate::trace::{self, TraceRequest};
use crate::validate::Checked;

pub const ACTIONS: [&str; 3] = ["Trace", "Audit", "DescribeStats"];

pub struct DaemonExtension {
    pub shared: Arc<Shared>,
}

pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Extension for DaemonExtension {
    fn handle(&mut self, action: &str, request: &Value, config: &Checked) -> Option<Result<Value>> {
        Some(match action {
            "Trace" => self.trace(request),
            "Audit" => Ok(audit::render_json(&audit::audit(config))),
            "DescribeStats" => Ok(crate::stats::describe(&self.shared)),
            _ => return None,
        })
    }

    fn is_read_only(&self, action: &str) -> bool {
        ACTIONS.contains(&action)
    }
}

impl DaemonExtension {
    fn trace(&self, request: &Value) -> Result<Value> {
        let req: TraceRequest = decode(request)?;
        let tables = self.shared.tables.load();
        let legs = match self.shared.tracer.as_ref() {
            Some(tracer) => tracer.trace(&tables, &req, now_nanos())?,
            None => trace::trace_offline(&tables, &req, now_nanos())?,
        };
        Ok(trace::render_json(&legs))
    }
}
