//! Stats count exactly the traffic sent (root only): crafted frames of every kind
//! (forwarded, refused at each of the four hops, dropped for each reason, ARP answered),
//! a distinct number of each, sent with packet sockets into the three-tier topology's
//! veths while `vpcgated` runs on AF_XDP; `DescribeStats` before and after must differ
//! by exactly them: verdicts by reason, per-ENI counters and bytes, per-queue rx/tx,
//! conntrack entries. Runs `scripts/netns/scenario.py --exact-stats` with this build's
//! binaries.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn describe_stats_counts_exactly_the_frames_sent() {
    if !is_root() || std::env::var_os("VGX_SKIP_NETNS_TESTS").is_some() {
        eprintln!("skipping: needs root (network namespaces, AF_XDP)");
        return;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_vpcgated")).parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns/scenario.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--exact-stats")
        .arg("--bin-dir")
        .arg(bin_dir)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!("scenario.py gave no JSON ({e}):\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    let sent = doc["sent"].as_object().unwrap();
    assert_eq!(sent.len(), 10, "every kind of frame was sent");
    assert_eq!(doc["frames"], 58);
    let mismatches: Vec<&str> = doc["mismatches"].as_array().unwrap().iter().filter_map(|m| m.as_str()).collect();
    assert!(mismatches.is_empty(), "DescribeStats differs from what was sent:\n{}", mismatches.join("\n"));
}
