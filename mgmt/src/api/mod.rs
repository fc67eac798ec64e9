//! The management API: EC2's action names, request fields and response shapes, one
//! JSON request and one JSON response per line. Errors are
//! `{"Error": {"Code": "InvalidPermission.Duplicate", "Message": "..."}}` with EC2's
//! codes.
//!
//! A request is all or nothing: an action computes the whole next config from the
//! current one; the engine validates it, saves it durably, publishes it to the
//! workers, and only then answers. A refused request changes nothing.

pub mod server;
mod sg;

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
    pub response: Value,
}

impl Outcome {
    pub fn read(response: Value) -> Outcome {
        Outcome { next: None, response }
    }
    pub fn write(next: Config, response: Value) -> Outcome {
        Outcome { next: Some(next), response }
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

/// Every EC2 action the appliance serves.
pub const ACTIONS: &[Action] = &[
    Action { name: "DescribeSecurityGroups", writes: false, run: sg::describe_security_groups },
    Action { name: "AuthorizeSecurityGroupIngress", writes: true, run: sg::authorize_ingress },
    Action { name: "AuthorizeSecurityGroupEgress", writes: true, run: sg::authorize_egress },
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

pub struct Engine {
    current: Checked,
    store: Option<Store>,
    publish: Publish,
    extension: Option<Box<dyn Extension>>,
}

impl Engine {
    pub fn new(current: Checked, store: Option<Store>, publish: Publish) -> Engine {
        Engine { current, store, publish, extension: None }
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
            let outcome = (action.run)(&self.current, req)?;
            if let Some(next) = outcome.next {
                self.commit(next)?;
            }
            return Ok(outcome.response);
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

    /// Validates, saves, publishes; all or nothing.
    fn commit(&mut self, next: Config) -> Result<()> {
        let checked = check(&next)?;
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

fn unauthorized(action: &str) -> Ec2Error {
    Ec2Error::new("UnauthorizedOperation", format!("You are not authorized to perform this operation ({action})."))
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
