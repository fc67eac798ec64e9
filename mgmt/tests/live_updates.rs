//! Live updates under traffic (root only): while crafted TCP streams run web -> app
//! through `vpcgated` on AF_XDP, many API connections change rules as fast as the
//! daemon answers (SG authorize/revoke, NACL entries that leave the traffic's verdict
//! alone) and one toggles the rule a probe stream depends on. No frame of the allowed
//! stream may be lost; every probe frame sent while the rule was acknowledged present
//! (absent) must arrive (must not), outside a publication margin after each toggle.
//! Runs `scripts/netns/scenario.py --live-updates SECS` (default 30 s;
//! `VPCGATE_LIVE_UPDATE_SECS`) with this build's binaries.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn rule_changes_at_full_speed_lose_and_misjudge_nothing() {
    if !is_root() || std::env::var_os("VGX_SKIP_NETNS_TESTS").is_some() {
        eprintln!("skipping: needs root (network namespaces, AF_XDP)");
        return;
    }
    let secs = std::env::var("VPCGATE_LIVE_UPDATE_SECS").unwrap_or_else(|_| "30".into());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_vpcgated")).parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns/scenario.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--live-updates", &secs, "--bin-dir"])
        .arg(bin_dir)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!("scenario.py gave no JSON ({e}):\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    eprintln!("live updates: {doc}");
    assert_eq!(doc["api_errors"].as_array().unwrap().len(), 0, "{doc}");
    let mismatches: Vec<&str> = doc["mismatches"].as_array().unwrap().iter().filter_map(|m| m.as_str()).collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(doc["est_lost"], 0);
    assert!(doc["est_sent"].as_u64().unwrap() > 1000, "the allowed stream ran");
    assert!(doc["toggles"].as_u64().unwrap() >= 4, "the probe's rule was toggled");
    let checked = doc["probes_checked"].as_u64().unwrap();
    assert!(checked * 2 > doc["probes"].as_u64().unwrap(), "most probe frames had a certain expected verdict");
    assert!(doc["changes"].as_u64().unwrap() > 0);
}
