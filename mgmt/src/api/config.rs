//! vpcgate's whole-config actions, behind `vpcgate export` and `vpcgate import`:
//! `ExportConfig` answers the config document as the describe-* actions print it
//! (NACLs with their `*` entries and every association, every rule id in
//! `SecurityGroupRules`, plus `Appliance`); `ImportConfig` replaces the config with
//! a document of the same shape (as `aws ec2 describe-*` print it), all or nothing.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode, Outcome};
use crate::error::{invalid, Ec2Error, Result};
use crate::model::Config;
use crate::validate::Checked;

/// The running config as the describe-* actions print it.
pub fn document(c: &Checked) -> Config {
    let mut doc = c.config.clone();
    doc.network_acls = (0..c.config.network_acls.len()).map(|i| super::nacl::describe_view(c, i)).collect();
    doc.security_group_rules = super::sg::all_rules(c);
    doc
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Export {
    #[serde(default)]
    dry_run: bool,
}

pub fn export_config(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: Export = decode(req)?;
    let _ = r.dry_run;
    Ok(Outcome::read(serde_json::to_value(document(c)).expect("config serialises")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Import {
    config: Option<Value>,
    #[serde(default)]
    dry_run: bool,
}

/// Top-level keys a config document may have (describe outputs' keys and `Appliance`).
pub const DOCUMENT_KEYS: &[&str] = &[
    "Vpcs",
    "Subnets",
    "NetworkAcls",
    "SecurityGroups",
    "SecurityGroupRules",
    "NetworkInterfaces",
    "FlowLogs",
    "Appliance",
];

pub fn import_config(c: &Checked, req: &Value) -> Result<Outcome> {
    let r: Import = decode(req)?;
    let _ = r.dry_run;
    let doc =
        r.config.ok_or_else(|| Ec2Error::new("MissingParameter", "The request must contain the parameter Config"))?;
    let obj = doc.as_object().ok_or_else(|| invalid("Config must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !DOCUMENT_KEYS.contains(&k.as_str())) {
        return Err(Ec2Error::new(
            "UnknownParameter",
            format!("Config has an unknown key '{k}' (expected {})", DOCUMENT_KEYS.join(", ")),
        ));
    }
    let mut next: Config =
        serde_json::from_value(doc.clone()).map_err(|e| invalid(format!("Invalid config document: {e}")))?;
    if !obj.contains_key("Appliance") {
        // Describe outputs carry no appliance section: the running one stays.
        next.appliance = c.config.appliance.clone();
    }
    let counts = json!({
        "Vpcs": next.vpcs.len(),
        "Subnets": next.subnets.len(),
        "NetworkAcls": next.network_acls.len(),
        "SecurityGroups": next.security_groups.len(),
        "NetworkInterfaces": next.network_interfaces.len(),
        "FlowLogs": next.flow_logs.len(),
    });
    Ok(Outcome::write(next, json!({"Return": true, "Imported": counts})))
}
