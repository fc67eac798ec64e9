//! The dataplane inside `vpcgated`: binds the ports and runs the workers. (AF_XDP
//! workers land with the port implementation; until then only `--no-dataplane` runs.)

use std::sync::Arc;

use crate::daemon::Shared;
use crate::validate::Checked;

pub struct DataplaneHandle {}

impl DataplaneHandle {
    pub fn shutdown(self) {}
}

pub fn start(_checked: &Checked, _shared: Arc<Shared>) -> Result<DataplaneHandle, String> {
    Err("this build has no AF_XDP dataplane yet; run with --no-dataplane".into())
}
