//! Stats count exactly the traffic sent (root only): crafted frames of every kind
//! (forwarded, refused at each of the four hops, dropped for each reason, ARP answered),
//! a distinct number of each, sent with packet sockets into the three-tier topology's
//! veths while `vpcgated` runs on AF_XDP; `DescribeStats` before and after must differ
//! by exactly them: verdicts by reason, per-ENI counters and bytes, per-queue rx/tx,
//! conntrack entries. Runs `scripts/netns/scenario.py --exact-stats` with this build's
//! binaries.

mod support;

#[test]
fn describe_stats_counts_exactly_the_frames_sent() {
    let Some(doc) = support::live::scenario(&["--exact-stats"]) else { return };
    let sent = doc["sent"].as_object().unwrap();
    assert_eq!(sent.len(), 10, "every kind of frame was sent");
    assert_eq!(doc["frames"], 58);
    let mismatches: Vec<&str> = doc["mismatches"].as_array().unwrap().iter().filter_map(|m| m.as_str()).collect();
    assert!(mismatches.is_empty(), "DescribeStats differs from what was sent:\n{}", mismatches.join("\n"));
}
