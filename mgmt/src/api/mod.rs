//! The management API: EC2's action names, request fields and response shapes, one
//! JSON request and one JSON response per line. Errors are
//! `{"Error": {"Code": "InvalidPermission.Duplicate", "Message": "..."}}` with EC2's
//! codes.
//!
//! A request is all or nothing: an action computes the whole next config from the
//! current one; the engine validates it, saves it durably, publishes it to the
//! workers, and only then answers. A refused request changes nothing.

//! One module per resource: `sg` (security groups and their rules), `nacl`, `eni`,
//! `vpc` (VPCs and subnets), `flowlogs`; `config` is the whole-config export/import;
//! `filter` the Describe filters; `ids` new EC2-shaped ids.

mod config;
mod eni;
pub mod filter;
mod flowlogs;
pub mod group_commit;
pub mod ids;
mod nacl;
pub mod server;
mod sg;
mod vpc;

pub use config::{document, DOCUMENT_KEYS};

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::error::{Ec2Error, Result};
use crate::model::Config;
use crate::store::Store;
use crate::validate::{check, Checked};

/// What a caller may do, from its peer credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// uid 0 or the admin group: everything.
    Admin,
    /// The read-only group: Describe*, Trace, Audit, stats.
    ReadOnly,
}

/// What an action concluded.
pub struct Outcome {
    /// The config after the action, for writes.
    pub next: Option<Config>,
    pub response: Response,
}

/// An action's answer: known at once, or computed from the accepted config (for
/// answers that carry what validation assigns, like rule ids).
pub enum Response {
    Now(Value),
    After(Box<dyn FnOnce(&Checked) -> Value>),
}

impl Outcome {
    pub fn read(response: Value) -> Outcome {
        Outcome { next: None, response: Response::Now(response) }
    }
    pub fn write(next: Config, response: Value) -> Outcome {
        Outcome { next: Some(next), response: Response::Now(response) }
    }
    /// A write whose answer is computed from the accepted config.
    pub fn write_then(next: Config, response: impl FnOnce(&Checked) -> Value + 'static) -> Outcome {
        Outcome { next: Some(next), response: Response::After(Box::new(response)) }
    }
}

type ActionFn = fn(&Checked, &Value) -> Result<Outcome>;

/// One API action.
pub struct Action {
    pub name: &'static str,
    /// Writes need the admin role.
    pub writes: bool,
    pub run: ActionFn,
}

/// Every EC2 action the appliance serves, and vpcgate's `ExportConfig`/`ImportConfig`.
pub const ACTIONS: &[Action] = &[
    Action { name: "DescribeSecurityGroups", writes: false, run: sg::describe_security_groups },
    Action { name: "CreateSecurityGroup", writes: true, run: sg::create_security_group },
    Action { name: "DeleteSecurityGroup", writes: true, run: sg::delete_security_group },
    Action { name: "AuthorizeSecurityGroupIngress", writes: true, run: sg::authorize_ingress },
    Action { name: "AuthorizeSecurityGroupEgress", writes: true, run: sg::authorize_egress },
    Action { name: "RevokeSecurityGroupIngress", writes: true, run: sg::revoke_ingress },
    Action { name: "RevokeSecurityGroupEgress", writes: true, run: sg::revoke_egress },
    Action { name: "DescribeSecurityGroupRules", writes: false, run: sg::describe_security_group_rules },
    Action { name: "ModifySecurityGroupRules", writes: true, run: sg::modify_security_group_rules },
    Action { name: "DescribeNetworkAcls", writes: false, run: nacl::describe_network_acls },
    Action { name: "CreateNetworkAcl", writes: true, run: nacl::create_network_acl },
    Action { name: "DeleteNetworkAcl", writes: true, run: nacl::delete_network_acl },
    Action { name: "CreateNetworkAclEntry", writes: true, run: nacl::create_network_acl_entry },
    Action { name: "ReplaceNetworkAclEntry", writes: true, run: nacl::replace_network_acl_entry },
    Action { name: "DeleteNetworkAclEntry", writes: true, run: nacl::delete_network_acl_entry },
    Action { name: "ReplaceNetworkAclAssociation", writes: true, run: nacl::replace_network_acl_association },
    Action { name: "DescribeNetworkInterfaces", writes: false, run: eni::describe_network_interfaces },
    Action { name: "ModifyNetworkInterfaceAttribute", writes: true, run: eni::modify_network_interface_attribute },
    Action { name: "DescribeSubnets", writes: false, run: vpc::describe_subnets },
    Action { name: "DescribeVpcs", writes: false, run: vpc::describe_vpcs },
    Action { name: "DescribeFlowLogs", writes: false, run: flowlogs::describe_flow_logs },
    Action { name: "CreateFlowLogs", writes: true, run: flowlogs::create_flow_logs },
    Action { name: "DeleteFlowLogs", writes: true, run: flowlogs::delete_flow_logs },
    Action { name: "ExportConfig", writes: false, run: config::export_config },
    Action { name: "ImportConfig", writes: true, run: config::import_config },
];

/// Actions vpcgate adds (trace, audit, stats): served by the daemon, which sees the
/// dataplane.
pub trait Extension: Send {
    /// `None` if the action is not one of its own.
    fn handle(&mut self, action: &str, request: &Value, config: &Checked) -> Option<Result<Value>>;
    /// Its actions that change nothing (allowed for the read-only role).
    fn is_read_only(&self, action: &str) -> bool;
}

/// Called with every accepted config, after it is saved: compiles and publishes it.
pub type Publish = Box<dyn FnMut(&Checked) + Send>;

/// Called with every config about to be accepted, before it is saved: a last check
/// that needs the outside world (a flow-log directory that cannot be written).
pub type Prepare = Box<dyn FnMut(&Checked) -> Result<()> + Send>;

pub struct Engine {
    current: Checked,
    store: Option<Store>,
    publish: Publish,
    prepare: Option<Prepare>,
    extension: Option<Box<dyn Extension>>,
    /// Accepted changes are only applied here; a [`group_commit::GroupCommit`] saves
    /// and publishes them (and holds their answers until then).
    deferred: bool,
    /// Changes applied so far (numbers them for the group commit).
    staged: u64,
}

impl Engine {
    pub fn new(current: Checked, store: Option<Store>, publish: Publish) -> Engine {
        Engine { current, store, publish, prepare: None, extension: None, deferred: false, staged: 0 }
    }

    /// An engine whose changes a [`group_commit::GroupCommit`] saves and publishes.
    pub fn deferred(current: Checked) -> Engine {
        let mut e = Engine::new(current, None, Box::new(|_| {}));
        e.deferred = true;
        e
    }

    /// How many changes were applied (the number of the last one).
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// Back to `c` (the last durable config) after a failed save.
    pub fn reset(&mut self, c: Checked) {
        self.current = c;
    }

    pub fn set_prepare(&mut self, p: Prepare) {
        self.prepare = Some(p);
    }

    pub fn set_extension(&mut self, e: Box<dyn Extension>) {
        self.extension = Some(e);
    }

    pub fn current(&self) -> &Checked {
        &self.current
    }

    /// One request line in, one response line out. Never panics on any input.
    pub fn handle_line(&mut self, line: &str, role: Role) -> String {
        let response = match serde_json::from_str::<Value>(line) {
            Ok(req) => self.handle(&req, role),
            Err(e) => {
                error_json(&Ec2Error::new("MalformedQueryString", format!("The request is not a JSON object: {e}")))
            }
        };
        response.to_string()
    }

    pub fn handle(&mut self, req: &Value, role: Role) -> Value {
        match self.dispatch(req, role) {
            Ok(v) => v,
            Err(e) => error_json(&e),
        }
    }

    fn dispatch(&mut self, req: &Value, role: Role) -> Result<Value> {
        let obj = req
            .as_object()
            .ok_or_else(|| Ec2Error::new("MalformedQueryString", "The request must be a JSON object"))?;
        let name = obj
            .get("Action")
            .and_then(Value::as_str)
            .ok_or_else(|| Ec2Error::new("MissingAction", "The request must contain the parameter Action"))?;
        if let Some(action) = ACTIONS.iter().find(|a| a.name == name) {
            if action.writes && role != Role::Admin {
                return Err(unauthorized(name));
            }
            // Checked by the action's typed decoding; read here so every action
            // answers a dry run the same way: after everything was validated.
            let dry_run = obj.get("DryRun").and_then(Value::as_bool).unwrap_or(false);
            let outcome = (action.run)(&self.current, req)?;
            let next = match outcome.next {
                Some(next) => Some(validated(&next)?),
                None => None,
            };
            if dry_run {
                return Err(Ec2Error::new("DryRunOperation", "Request would have succeeded, but DryRun flag is set."));
            }
            if let Some(next) = next {
                self.commit(next)?;
            }
            return Ok(match outcome.response {
                Response::Now(v) => v,
                Response::After(f) => f(&self.current),
            });
        }
        if let Some(ext) = &mut self.extension {
            if role != Role::Admin && !ext.is_read_only(name) {
                return Err(unauthorized(name));
            }
            if let Some(result) = ext.handle(name, req, &self.current) {
                return result;
            }
        }
        Err(Ec2Error::new("InvalidAction", format!("The action {name} is not valid for this web service.")))
    }

    /// Saves and publishes a validated config; nothing changes if it cannot be saved.
    fn commit(&mut self, checked: Checked) -> Result<()> {
        if let Some(prepare) = &mut self.prepare {
            prepare(&checked)?;
        }
        if self.deferred {
            self.current = checked;
            self.staged += 1;
            return Ok(());
        }
        if let Some(store) = &self.store {
            store.save(&checked.config).map_err(|e| {
                Ec2Error::new("InternalError", format!("The change was not saved, so it was not applied: {e}"))
            })?;
        }
        (self.publish)(&checked);
        self.current = checked;
        Ok(())
    }
}

/// Validates a next config and pins every rule id in its `SecurityGroupRules`, so ids
/// survive restarts and edits (ModifySecurityGroupRules keeps a rule's id).
fn validated(next: &Config) -> Result<Checked> {
    let mut checked = check(next)?;
    checked.config.security_group_rules = sg::all_rules(&checked);
    Ok(checked)
}

fn unauthorized(action: &str) -> Ec2Error {
    Ec2Error::new("UnauthorizedOperation", format!("You are not authorized to perform this operation ({action})."))
}

/// EC2's not-found error: `The vpc ID 'vpc-1' does not exist`.
pub fn not_found(code: &str, what: &str, id: &str) -> Ec2Error {
    Ec2Error::new(code, format!("The {what} ID '{id}' does not exist"))
}

/// EC2's malformed-id error.
pub fn malformed(code: &str, id: &str, prefix: &str) -> Ec2Error {
    Ec2Error::new(code, format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"))
}

/// Checks an id's shape, then finds it with `find`.
pub fn lookup<T>(
    id: &str,
    prefix: &str,
    malformed_code: &str,
    not_found_code: &str,
    what: &str,
    find: impl FnOnce(&str) -> Option<T>,
) -> Result<T> {
    if !crate::validate::is_resource_id(id, prefix) {
        return Err(malformed(malformed_code, id, prefix));
    }
    find(id).ok_or_else(|| not_found(not_found_code, what, id))
}

/// Tags from `TagSpecifications` for one resource type.
pub fn tags_for(specs: &[TagSpecification], resource_type: &str) -> Result<Vec<crate::model::Tag>> {
    let mut tags = Vec::new();
    for s in specs {
        if s.resource_type.as_deref().is_some_and(|t| t != resource_type) {
            return Err(crate::error::invalid(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                s.resource_type.as_deref().unwrap_or_default()
            )));
        }
        tags.extend(s.tags.iter().cloned());
    }
    Ok(tags)
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagSpecification {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<crate::model::Tag>,
}

pub fn error_json(e: &Ec2Error) -> Value {
    json!({"Error": {"Code": e.code, "Message": e.message}})
}

/// Decodes a request into its typed form: unknown parameters are EC2's
/// `UnknownParameter`, badly typed ones `InvalidParameterValue`.
pub fn decode<T: DeserializeOwned>(req: &Value) -> Result<T> {
    let mut fields: Map<String, Value> = req.as_object().cloned().unwrap_or_default();
    fields.remove("Action");
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown field") {
            Ec2Error::new("UnknownParameter", format!("The parameter is not recognized: {msg}"))
        } else if msg.starts_with("missing field") {
            Ec2Error::new("MissingParameter", format!("The request is missing a parameter: {msg}"))
        } else {
            Ec2Error::new("InvalidParameterValue", format!("Invalid request: {msg}"))
        }
    })
}
