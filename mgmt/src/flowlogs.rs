//! Flow logs from the config: what each one means (validated with EC2's errors), and
//! the aggregator with one sink per flow log that delivers them.
//!
//! Destinations (`LogDestinationType`):
//! - `s3`: `LogDestination` `arn:aws:s3:::BUCKET[/PREFIX]`, written under the flow-log
//!   root as `ROOT/BUCKET/PREFIX/AWSLogs/…` (gzip text, or Parquet with
//!   `DestinationOptions.FileFormat: parquet`);
//! - `cloud-watch-logs`: `LogGroupName`, one `eni-…-all` stream file per ENI under
//!   `ROOT/LOG-GROUP/`;
//! - `socket` (vpcgate's own): `LogDestination` `unix:/path` or `tcp:HOST:PORT`, a line
//!   stream for SIEM forwarders (Vector, Fluent Bit, rsyslog).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use flowlog::sink::{
    CloudWatchDirConfig, CloudWatchDirSink, FileFormat, S3DirConfig, S3DirSink, SocketConfig, SocketSink, SocketTarget,
};
use flowlog::{Aggregator, EniMeta, FlowLogSpec, LogDestination, LogFormat, Sink, TrafficType};

use crate::error::{invalid, Ec2Error, Result};
use crate::validate::{is_resource_id, Checked};

#[derive(Clone, Debug)]
pub enum Destination {
    S3 { destination: LogDestination, file_format: FileFormat, hive: bool, per_hour: bool },
    CloudWatch { log_group: String },
    Socket { target: SocketTarget },
}

/// One flow log, understood.
#[derive(Clone, Debug)]
pub struct FlowLogPlan {
    pub spec: FlowLogSpec,
    pub format: LogFormat,
    pub destination: Destination,
    /// Set when `MaxAggregationInterval` is neither 60 nor 600 (AWS allows only those).
    pub warning: Option<String>,
}

fn param(message: String, path: &str) -> Ec2Error {
    Ec2Error::new("InvalidParameter", message).at(path)
}

/// Checks every flow log of a (otherwise checked) config and says what it means.
pub fn plan(c: &Checked) -> Result<Vec<FlowLogPlan>> {
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in c.config.flow_logs.iter().enumerate() {
        let path = format!("FlowLogs[{i}]");
        if !is_resource_id(&f.flow_log_id, "fl") {
            return Err(Ec2Error::new(
                "InvalidFlowLogId.Malformed",
                format!("Invalid id: \"{}\" (expecting \"fl-...\")", f.flow_log_id),
            )
            .at(&path));
        }
        if !ids.insert(f.flow_log_id.clone()) {
            return Err(invalid(format!("Duplicate flow log id {}", f.flow_log_id)).at(&path));
        }
        let covers: HashSet<String> = c
            .enis
            .iter()
            .filter(|e| {
                f.resource_id == e.id || f.resource_id == c.subnets[e.subnet].id || f.resource_id == c.vpcs[e.vpc].id
            })
            .map(|e| e.id.clone())
            .collect();
        let known = c.enis.iter().any(|e| e.id == f.resource_id)
            || c.subnets.iter().any(|s| s.id == f.resource_id)
            || c.vpcs.iter().any(|v| v.id == f.resource_id);
        if !known {
            return Err(Ec2Error::new(
                "InvalidParameterValue",
                format!("The flow log's resource '{}' does not exist", f.resource_id),
            )
            .at(&format!("{path}.ResourceId")));
        }
        let traffic = TrafficType::parse(&f.traffic_type).ok_or_else(|| {
            invalid(format!("Invalid value '{}' for TrafficType. Must be ACCEPT, REJECT or ALL", f.traffic_type))
                .at(&format!("{path}.TrafficType"))
        })?;
        let format = match &f.log_format {
            None => LogFormat::default(),
            Some(s) => LogFormat::parse(s).map_err(|e| param(e.to_string(), &format!("{path}.LogFormat")))?,
        };
        let interval = f.max_aggregation_interval.unwrap_or(600);
        if !(1..=600).contains(&interval) {
            return Err(invalid(format!("Invalid value '{interval}' for MaxAggregationInterval. Must be 60 or 600"))
                .at(&format!("{path}.MaxAggregationInterval")));
        }
        let warning = (interval != 60 && interval != 600).then(|| {
            format!("{}: MaxAggregationInterval {interval} s is accepted by vpcgate (for tests and benchmarks); AWS allows only 60 or 600", f.flow_log_id)
        });
        let sample_one_in = f.sample_one_in.unwrap_or(1);
        if sample_one_in == 0 {
            return Err(invalid("SampleOneIn must be at least 1").at(&format!("{path}.SampleOneIn")));
        }
        let options = f.destination_options.clone().unwrap_or_default();
        let destination = match f.log_destination_type.as_deref().unwrap_or("cloud-watch-logs") {
            "s3" => {
                let arn = f.log_destination.as_deref().ok_or_else(|| {
                    Ec2Error::new(
                        "MissingParameter",
                        "An s3 flow log needs LogDestination (arn:aws:s3:::bucket[/prefix])",
                    )
                    .at(&path)
                })?;
                let destination = LogDestination::parse(arn)
                    .map_err(|e| invalid(e.to_string()).at(&format!("{path}.LogDestination")))?;
                let file_format = match options.file_format.as_deref().unwrap_or("plain-text") {
                    "plain-text" => FileFormat::PlainText,
                    "parquet" => FileFormat::Parquet,
                    other => {
                        return Err(invalid(format!(
                            "Invalid value '{other}' for FileFormat. Must be plain-text or parquet"
                        ))
                        .at(&format!("{path}.DestinationOptions.FileFormat")))
                    }
                };
                Destination::S3 {
                    destination,
                    file_format,
                    hive: options.hive_compatible_partitions.unwrap_or(false),
                    per_hour: options.per_hour_partition.unwrap_or(false),
                }
            }
            "cloud-watch-logs" => {
                let group = f.log_group_name.clone().ok_or_else(|| {
                    Ec2Error::new("MissingParameter", "A cloud-watch-logs flow log needs LogGroupName").at(&path)
                })?;
                if group.is_empty() || group.len() > 512 || group.split('/').any(|p| p == "..") {
                    return Err(
                        invalid(format!("Invalid log group name '{group}'")).at(&format!("{path}.LogGroupName"))
                    );
                }
                Destination::CloudWatch { log_group: group }
            }
            "socket" => {
                let target = f.log_destination.as_deref().ok_or_else(|| {
                    Ec2Error::new(
                        "MissingParameter",
                        "A socket flow log needs LogDestination (unix:/path or tcp:host:port)",
                    )
                    .at(&path)
                })?;
                let target =
                    SocketTarget::parse(target).map_err(|e| invalid(e.0).at(&format!("{path}.LogDestination")))?;
                Destination::Socket { target }
            }
            other => {
                return Err(invalid(format!(
                    "Invalid value '{other}' for LogDestinationType: vpcgate writes s3, cloud-watch-logs and socket"
                ))
                .at(&format!("{path}.LogDestinationType")))
            }
        };
        out.push(FlowLogPlan {
            spec: FlowLogSpec {
                id: f.flow_log_id.clone(),
                enis: covers,
                traffic,
                interval: interval as u64,
                sample_one_in,
            },
            format,
            destination,
            warning,
        });
    }
    Ok(out)
}

/// What flow records say about every ENI (for NODATA records).
pub fn metas(c: &Checked) -> Vec<Arc<EniMeta>> {
    c.enis.iter().map(|e| Arc::new(crate::compile::eni_meta(c, e))).collect()
}

fn unwritable(root: &Path, e: std::io::Error) -> Ec2Error {
    invalid(format!("Flow logs cannot be written under {}: {e}", root.display()))
}

/// Opens one sink per flow log under `root`; a directory that cannot be written is
/// refused here, before the config is accepted.
pub fn open(c: &Checked, plans: &[FlowLogPlan], root: &Path) -> Result<Aggregator> {
    let mut logs: Vec<(FlowLogSpec, Box<dyn Sink + Send>)> = Vec::new();
    for p in plans {
        let sink: Box<dyn Sink + Send> = match &p.destination {
            Destination::S3 { destination, file_format, hive, per_hour } => {
                let mut cfg = S3DirConfig::new(root, destination.clone(), &p.spec.id);
                cfg.format = p.format.clone();
                cfg.file_format = *file_format;
                cfg.hive_compatible_partitions = *hive;
                cfg.per_hour_partition = *per_hour;
                probe_writable(root)?;
                Box::new(S3DirSink::new(cfg).map_err(|e| unwritable(root, e))?)
            }
            Destination::CloudWatch { log_group } => {
                let mut cfg = CloudWatchDirConfig::new(root, log_group);
                cfg.format = p.format.clone();
                probe_writable(root)?;
                Box::new(CloudWatchDirSink::new(cfg).map_err(|e| unwritable(root, e))?)
            }
            Destination::Socket { target } => {
                let mut cfg = SocketConfig::new(target.clone());
                cfg.format = p.format.clone();
                Box::new(SocketSink::new(cfg))
            }
        };
        logs.push((p.spec.clone(), sink));
    }
    Ok(Aggregator::new(logs, metas(c)))
}

/// Creates `root` and proves a file can be written there.
fn probe_writable(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| unwritable(root, e))?;
    let probe = root.join(format!(".vpcgate-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| unwritable(root, e))?;
    std::fs::remove_file(&probe).map_err(|e| unwritable(root, e))
}
