//! The API client: one JSON request line to the daemon's socket, one response line back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::Ec2Error;

pub enum CallError {
    /// The socket could not be reached or answered nothing (AWS CLI exit 255).
    Connect(String),
    /// The service answered an error (AWS CLI exit 254).
    Service(Ec2Error),
}

pub fn call(socket: &Path, request: &Value) -> Result<Value, CallError> {
    let endpoint = format!("Could not connect to the endpoint URL: \"unix://{}\"", socket.display());
    let stream = UnixStream::connect(socket).map_err(|e| CallError::Connect(format!("{endpoint}: {e}")))?;
    let timeout = Some(Duration::from_secs(120));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut writer = &stream;
    // The daemon may refuse a connection (unknown peer) before reading: still read
    // its answer if writing fails.
    let _ = writer.write_all(format!("{request}\n").as_bytes());
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|e| CallError::Connect(format!("{endpoint}: {e}")))?;
    if line.trim().is_empty() {
        return Err(CallError::Connect(format!("{endpoint}: the daemon closed the connection without answering")));
    }
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| CallError::Connect(format!("{endpoint}: the daemon's answer is not JSON: {e}")))?;
    match v.get("Error") {
        Some(err) => Err(CallError::Service(Ec2Error::new(
            err.get("Code").and_then(Value::as_str).unwrap_or("InternalError"),
            err.get("Message").and_then(Value::as_str).unwrap_or_default(),
        ))),
        None => Ok(v),
    }
}
