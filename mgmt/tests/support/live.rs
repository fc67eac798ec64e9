//! Live tests over AF_XDP: `scripts/netns/scenario.py` with this build's binaries, in
//! network namespaces it creates and removes itself.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `scenario.py --bin-dir <this build> ARGS` and returns the JSON document it
/// prints last; `None` (and says so) when not root or `VGX_SKIP_NETNS_TESTS` is set.
pub fn scenario(args: &[&str]) -> Option<Value> {
    if !is_root() || std::env::var_os("VGX_SKIP_NETNS_TESTS").is_some() {
        eprintln!("skipping: live tests need root (network namespaces, AF_XDP)");
        return None;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_vpcgated")).parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns/scenario.py");
    let out =
        Command::new("python3").arg(&script).arg("--bin-dir").arg(bin_dir).args(args).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!("scenario.py gave no JSON ({e}):\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    Some(doc)
}
