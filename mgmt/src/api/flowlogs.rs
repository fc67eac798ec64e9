//! Flow-log actions. Flow logs are kept in the config's `FlowLogs` exactly as
//! describe-flow-logs prints them. Checks here are structural (resource, traffic
//! type, destination); what a log format or destination means is the flow-log
//! writer's business.

use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, Filter};
use super::ids::new_id;
use super::{decode, tags_for, Outcome, TagSpecification};
use crate::error::{invalid, Ec2Error, Result};
use crate::model::{DestinationOptions, FlowLog, Tag};
use crate::validate::{is_resource_id, Checked};

/// The format EC2 prints for a flow log created without `LogFormat`.
pub const DEFAULT_LOG_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DestinationOptionsRequest {
    file_format: Option<String>,
    hive_compatible_partitions: Option<bool>,
    per_hour_partition: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateFlowLogs {
    #[serde(default)]
    resource_ids: Vec<String>,
    resource_type: Option<String>,
    traffic_type: Option<String>,
    log_destination_type: Option<String>,
    log_destination: Option<String>,
    log_group_name: Option<String>,
    deliver_logs_permission_arn: Option<String>,
    deliver_cross_account_role: Option<String>,
    log_format: Option<String>,
    max_aggregation_interval: Option<i64>,
    destination_options: Option<DestinationOptionsRequest>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn missing(name: &str) -> Ec2Error {
    Ec2Error::new("MissingParameter", format!("The request must contain the parameter {name}"))
}

/// Checks that a flow log's resource exists, with the resource type's EC2 errors.
fn check_resource(c: &Checked, resource_type: &str, id: &str) -> Result<()> {
    match resource_type {
        "VPC" => super::vpc::find_vpc(c, id).map(drop),
        "Subnet" => super::vpc::find_subnet(c, id).map(drop),
        "NetworkInterface" => super::eni::find_eni(c, id).map(drop),
        other => Err(invalid(format!(
            "Invalid value '{other}' for ResourceType: vpcgate logs VPC, Subnet and NetworkInterface resources"
        ))),
    }
}

pub fn create_flow_logs(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: CreateFlowLogs = decode(req)?;
    let _ = r.dry_run;
    if r.resource_ids.is_empty() {
        return Err(missing("ResourceIds"));
    }
    let resource_type = r.resource_type.ok_or_else(|| missing("ResourceType"))?;
    let traffic_type = r.traffic_type.ok_or_else(|| missing("TrafficType"))?;
    if !["ACCEPT", "REJECT", "ALL"].contains(&traffic_type.as_str()) {
        return Err(invalid(format!("Invalid value '{traffic_type}' for TrafficType. Must be ACCEPT, REJECT or ALL")));
    }
    let destination_type = r.log_destination_type.unwrap_or_else(|| "cloud-watch-logs".into());
    match destination_type.as_str() {
        "cloud-watch-logs" if r.log_group_name.is_none() && r.log_destination.is_none() => {
            return Err(missing("LogGroupName"))
        }
        "cloud-watch-logs" => {}
        "s3" | "kinesis-data-firehose" if r.log_destination.is_none() => return Err(missing("LogDestination")),
        "s3" | "kinesis-data-firehose" => {}
        other => {
            return Err(invalid(format!(
                "Invalid value '{other}' for LogDestinationType. Must be cloud-watch-logs, s3 or kinesis-data-firehose"
            )))
        }
    }
    if r.log_group_name.is_some() && r.log_destination.is_some() {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "Specify either LogGroupName or LogDestination, not both",
        ));
    }
    let interval = r.max_aggregation_interval.unwrap_or(600);
    if !(1..=600).contains(&interval) {
        return Err(invalid(format!(
            "Invalid value '{interval}' for MaxAggregationInterval. Must be 60 or 600 (vpcgate also accepts 1-600)"
        )));
    }
    if r.log_format.as_deref().is_some_and(|f| f.trim().is_empty()) {
        return Err(invalid("LogFormat must name at least one field"));
    }
    let tags = tags_for(&r.tag_specifications, "vpc-flow-log")?;
    let mut next = c.config.clone();
    let mut ids = Vec::new();
    for (i, resource) in r.resource_ids.iter().enumerate() {
        if r.resource_ids[..i].contains(resource) {
            return Err(invalid(format!("The resource {resource} is given twice")));
        }
        check_resource(c, &resource_type, resource)?;
        let same = |f: &FlowLog| {
            f.resource_id == *resource
                && f.traffic_type == traffic_type
                && f.log_destination_type.as_deref().unwrap_or("cloud-watch-logs") == destination_type
                && f.log_destination == r.log_destination
                && f.log_group_name == r.log_group_name
        };
        if let Some(f) = c.config.flow_logs.iter().find(|f| same(f)) {
            return Err(Ec2Error::new(
                "FlowLogAlreadyExists",
                format!(
                    "Error. There is an existing Flow Log with the same configuration and log destination ({}).",
                    f.flow_log_id
                ),
            ));
        }
        let id = new_id("fl", |id| next.flow_logs.iter().any(|f| f.flow_log_id == id));
        let mut extra = serde_json::Map::new();
        extra.insert("CreationTime".into(), json!(now_iso8601()));
        extra.insert("DeliverLogsStatus".into(), json!("SUCCESS"));
        extra.insert("FlowLogStatus".into(), json!("ACTIVE"));
        if let Some(arn) = &r.deliver_logs_permission_arn {
            extra.insert("DeliverLogsPermissionArn".into(), json!(arn));
        }
        if let Some(role) = &r.deliver_cross_account_role {
            extra.insert("DeliverCrossAccountRole".into(), json!(role));
        }
        if !tags.is_empty() {
            extra.insert("Tags".into(), json!(tags));
        }
        next.flow_logs.push(FlowLog {
            flow_log_id: id.clone(),
            resource_id: resource.clone(),
            traffic_type: traffic_type.clone(),
            log_destination_type: Some(destination_type.clone()),
            log_destination: r.log_destination.clone(),
            log_group_name: r.log_group_name.clone(),
            log_format: Some(r.log_format.clone().unwrap_or_else(|| DEFAULT_LOG_FORMAT.into())),
            max_aggregation_interval: Some(interval),
            destination_options: r.destination_options.as_ref().map(|d| DestinationOptions {
                file_format: d.file_format.clone(),
                hive_compatible_partitions: d.hive_compatible_partitions,
                per_hour_partition: d.per_hour_partition,
            }),
            extra,
        });
        ids.push(id);
    }
    let mut response = json!({"FlowLogIds": ids, "Unsuccessful": []});
    if let Some(t) = r.client_token {
        response["ClientToken"] = json!(t);
    }
    Ok(Outcome::write(next, response))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteFlowLogs {
    #[serde(default)]
    flow_log_ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_flow_logs(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DeleteFlowLogs = decode(req)?;
    let _ = r.dry_run;
    if r.flow_log_ids.is_empty() {
        return Err(missing("FlowLogIds"));
    }
    for id in &r.flow_log_ids {
        if !is_resource_id(id, "fl") {
            return Err(invalid(format!("Invalid id: \"{id}\" (expecting \"fl-...\")")));
        }
        if !c.config.flow_logs.iter().any(|f| &f.flow_log_id == id) {
            return Err(Ec2Error::new("InvalidFlowLogId.NotFound", format!("Flow log {id} does not exist")));
        }
    }
    let mut next = c.config.clone();
    next.flow_logs.retain(|f| !r.flow_log_ids.contains(&f.flow_log_id));
    Ok(Outcome::write(next, json!({"Unsuccessful": []})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeFlowLogs {
    #[serde(default)]
    flow_log_ids: Vec<String>,
    /// EC2 names this one `Filter`; `Filters` is accepted too.
    #[serde(default, alias = "Filters")]
    filter: Vec<Filter>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const FLOW_LOG_FILTERS: &[&str] =
    &["deliver-log-status", "log-destination-type", "flow-log-id", "log-group-name", "resource-id", "traffic-type"];

fn flow_log_values(f: &FlowLog, name: &str) -> Vec<String> {
    match name {
        "deliver-log-status" => {
            filter::s(f.extra.get("DeliverLogsStatus").and_then(Value::as_str).unwrap_or("SUCCESS"))
        }
        "log-destination-type" => filter::s(f.log_destination_type.as_deref().unwrap_or("cloud-watch-logs")),
        "flow-log-id" => filter::s(&f.flow_log_id),
        "log-group-name" => filter::opt(&f.log_group_name),
        "resource-id" => filter::s(&f.resource_id),
        "traffic-type" => filter::s(&f.traffic_type),
        _ => Vec::new(),
    }
}

pub fn describe_flow_logs(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: DescribeFlowLogs = decode(req)?;
    let _ = (r.dry_run, r.max_results, r.next_token);
    filter::check_names(&r.filter, FLOW_LOG_FILTERS)?;
    // Like EC2, unknown flow-log ids just match nothing.
    let logs: Vec<&FlowLog> = c
        .config
        .flow_logs
        .iter()
        .filter(|f| r.flow_log_ids.is_empty() || r.flow_log_ids.contains(&f.flow_log_id))
        .filter(|f| {
            let tags: Vec<Tag> =
                f.extra.get("Tags").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
            filter::matches(&r.filter, &tags, |n| flow_log_values(f, n))
        })
        .collect();
    Ok(Outcome::read(json!({ "FlowLogs": logs })))
}

/// The current UTC time as EC2 prints it: `2024-05-01T12:34:56.789Z`.
fn now_iso8601() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_time_has_ec2_shape() {
        let t = super::now_iso8601();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() > "2024-01-01");
    }
}
