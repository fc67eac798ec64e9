//! Live updates under traffic (root only): while crafted TCP streams run web -> app
//! through `vpcgated` on AF_XDP, many API connections change rules as fast as the
//! daemon answers (SG authorize/revoke, NACL entries that leave the traffic's verdict
//! alone) and one toggles the rule a probe stream depends on. No frame of the allowed
//! stream may be lost; every probe frame sent while the rule was acknowledged present
//! (absent) must arrive (must not), outside a publication margin after each toggle.
//! Runs `scripts/netns/scenario.py --live-updates SECS` (default 30 s;
//! `VPCGATE_LIVE_UPDATE_SECS`) with this build's binaries.

mod support;

#[test]
fn rule_changes_at_full_speed_lose_and_misjudge_nothing() {
    let secs = std::env::var("VPCGATE_LIVE_UPDATE_SECS").unwrap_or_else(|_| "30".into());
    let Some(doc) = support::live::scenario(&["--live-updates", &secs]) else { return };
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
