//! Bulk TCP through `vpcgated` over AF_XDP (root only): 1 GiB from web to app on a port
//! app-sg allows, checked end to end by SHA-256 on both sides, then an iperf3 run of
//! the same size on a port opened through the CLI for it; the daemon's memory before and
//! after, its socket counters, and the top-talkers view of the transfer.

mod support;

const GIB: u64 = 1 << 30;

#[test]
fn one_gib_through_the_switch_verified_without_leaks() {
    let Some(doc) = support::live::scenario(&["--bulk", &GIB.to_string()]) else { return };
    eprintln!("{}", serde_json::to_string_pretty(&doc).unwrap());

    let t = &doc["transfer"];
    assert_eq!(t["ok"], true, "verified transfer: {t}");
    assert_eq!(t["bytes"].as_u64(), Some(GIB), "{t}");
    assert_eq!(t["sha256"], t["answer"], "the receiver hashed what the sender sent: {t}");

    let iperf = &doc["iperf3"];
    // iperf3 -n stops at the sender's count; the receiver's total is read when the
    // sender ends, so a last window may still be in flight.
    assert!(iperf["bytes_sent"].as_u64().unwrap_or(0) >= GIB, "iperf3 sent at least 1 GiB: {iperf}");
    assert!(iperf["bytes"].as_u64().unwrap_or(0) >= GIB / 100 * 99, "iperf3 received about 1 GiB: {iperf}");

    // No leak: a gigabyte (and an iperf3 run) later the daemon holds about what it held.
    let before = doc["rss_kib_before"].as_u64().expect("daemon RSS before");
    let after = doc["rss_kib_after"].as_u64().expect("daemon RSS after");
    assert!(after < before + 16 * 1024, "RSS grew from {before} KiB to {after} KiB");

    let stats = &doc["stats"];
    for w in stats["Workers"].as_array().unwrap() {
        assert_eq!(w["RxDropped"], 0, "the kernel dropped frames for want of ring room: {w}");
        assert_eq!(w["HandoffDropped"], 0, "{w}");
    }
    let dropped = &stats["Totals"]["Dropped"];
    assert_eq!(dropped["malformed"], 0, "{dropped}");
    assert_eq!(dropped["conntrack-full"], 0, "{dropped}");

    // The transfer is the top talker at web's egress, counted (or estimated) at about
    // its size: top's view comes from the same workers that forwarded it.
    let top = stats["TopFlows"].as_array().unwrap();
    let web_out = top
        .iter()
        .filter(|f| f["Action"] == "ACCEPT" && f["Direction"] == "egress" && f["DstPort"] == 8081)
        .map(|f| f["Bytes"].as_u64().unwrap())
        .max()
        .unwrap_or_else(|| panic!("the iperf3 flow is among the top flows: {top:?}"));
    assert!(web_out > GIB / 2 && web_out < 2 * GIB, "top talker bytes {web_out} for a 1 GiB run");
}
