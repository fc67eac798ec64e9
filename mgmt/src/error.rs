//! EC2-style errors: a code from EC2's catalogue and a message that names what is wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Error {
    pub code: String,
    pub message: String,
}

impl Ec2Error {
    pub fn new(code: &str, message: impl Into<String>) -> Ec2Error {
        Ec2Error { code: code.to_string(), message: message.into() }
    }

    /// Adds where in the document the problem is (`SecurityGroups[1].IpPermissions[0]`).
    pub fn at(mut self, path: &str) -> Ec2Error {
        if !path.is_empty() {
            self.message = format!("{} (at {path})", self.message);
        }
        self
    }
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "An error occurred ({}): {}", self.code, self.message)
    }
}

impl std::error::Error for Ec2Error {}

pub type Result<T> = std::result::Result<T, Ec2Error>;

/// `InvalidParameterValue` with a message.
pub fn invalid(message: impl Into<String>) -> Ec2Error {
    Ec2Error::new("InvalidParameterValue", message)
}
