//! The three-tier scenario live over AF_XDP (root only): real hosts in network
//! namespaces the test creates and removes, real TCP connections and pings through
//! `vpcgated`, rule changes through the `vpcgate` CLI while connections are open, and
//! the flow-log records the run produced. Runs `scripts/netns/scenario.py --json`
//! with this build's binaries.

mod support;

use serde_json::Value;

fn run(queues: u32) -> Option<Value> {
    support::live::scenario(&["--json", "--queues", &queues.to_string()])
}

/// Flow records as (interface, srcaddr, dstaddr, dstport, action).
fn records(doc: &Value) -> Vec<(String, String, String, String, String)> {
    doc["flow_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f: Vec<String> = r.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect();
            (f[2].clone(), f[3].clone(), f[4].clone(), f[6].clone(), f[12].clone())
        })
        .collect()
}

fn has(
    recs: &[(String, String, String, String, String)],
    eni: &str,
    src: &str,
    dst: &str,
    dport: &str,
    action: &str,
) -> bool {
    recs.iter().any(|r| r.0 == eni && r.1 == src && r.2 == dst && r.3 == dport && r.4 == action)
}

/// With adaptive polling (the default) an idle appliance sleeps: measured over 3 s
/// without traffic after the scenario, the whole daemon uses a sliver of one core,
/// where one spinning worker alone would use all of it.
fn assert_idle_workers_sleep(doc: &Value) {
    let cpu = doc["idle_cpu"].as_f64().expect("idle_cpu measured");
    assert!(cpu < 0.15, "vpcgated used {:.0}% of a core while idle", cpu * 100.0);
}

const WEB: &str = "eni-0f00d00000000b001";
const APP: &str = "eni-0f00d00000000b003";
const DB: &str = "eni-0f00d00000000b004";

#[test]
fn every_row_of_the_scenario_table_over_af_xdp() {
    let Some(doc) = run(1) else { return };
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 18, "rows 1-16 with 8a/8b and 13b");
    for r in rows {
        assert!(
            r["ok"].as_bool().unwrap(),
            "row {}: {} expected {}, observed {}",
            r["row"],
            r["what"],
            r["expected"],
            r["observed"]
        );
    }
    // What the flow log says about them.
    let recs = records(&doc);
    let (client, web, app, db) = ("198.19.0.10", "198.18.1.10", "198.18.2.10", "198.18.3.10");
    assert!(has(&recs, WEB, client, web, "80", "ACCEPT"), "row 1 at web");
    assert!(
        has(&recs, WEB, web, app, "8080", "ACCEPT") && has(&recs, APP, web, app, "8080", "ACCEPT"),
        "row 7 at both ENIs"
    );
    assert!(
        has(&recs, WEB, web, app, "22", "ACCEPT") && has(&recs, APP, web, app, "22", "REJECT"),
        "row 8a: left web, refused at app"
    );
    assert!(has(&recs, WEB, web, db, "3306", "REJECT"), "row 8b: refused at web");
    assert!(!recs.iter().any(|r| r.0 == DB && r.1 == web && r.3 == "3306"), "row 8b: nothing at db");
    assert!(has(&recs, WEB, "198.19.66.6", web, "80", "REJECT"), "row 12");
    assert!(has(&recs, DB, db, client, "443", "REJECT"), "row 10");
    // Counters agree that nothing was dropped for reasons outside the policy.
    let totals = &doc["stats"]["Totals"];
    for reason in ["malformed", "unknown-source", "src-dst-check", "conntrack-full", "fragment-orphan"] {
        assert_eq!(totals["Dropped"][reason], 0, "{reason}: {totals}");
    }
    assert_idle_workers_sleep(&doc);
}

/// Two queues per veth and two workers: flows are spread by their senders' hash
/// over both queues, replies often land on the other worker and are handed to the
/// flow's owner; not one reply may miss its conntrack entry (web's security group
/// lets replies out only by conntrack, so a miss would be an sg-egress reject).
#[test]
fn two_queues_two_workers_hand_replies_to_their_owner() {
    let Some(doc) = run(2) else { return };
    for r in doc["rows"].as_array().unwrap() {
        assert!(r["ok"].as_bool().unwrap(), "row {}: expected {}, observed {}", r["row"], r["expected"], r["observed"]);
    }
    let workers = doc["stats"]["Workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(w["Verdicts"]["Frames"].as_u64().unwrap() > 0, "worker {} carried no traffic: {w}", w["Worker"]);
    }
    let handed: u64 = workers.iter().map(|w| w["HandoffOut"].as_u64().unwrap()).sum();
    let dropped: u64 = workers.iter().map(|w| w["HandoffDropped"].as_u64().unwrap()).sum();
    assert!(handed > 0, "no frame was handed over: the test did not exercise the hand-off");
    assert_eq!(dropped, 0);
    assert_idle_workers_sleep(&doc);
}
