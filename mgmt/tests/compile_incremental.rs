//! The compiler reuses an ENI's compiled groups between snapshots while nothing they
//! are built from changed. These tests drive real API changes through the engine and
//! check, after every change, that the incremental snapshot judges exactly like one
//! compiled from scratch, and that it rebuilt what changed and only that.

#[path = "support/daemon.rs"]
mod daemon;

use std::sync::{Arc, Mutex};

use daemon::*;
use dataplane::addr::Family;
use dataplane::policy::sg::SgDirection;
use dataplane::tables::Tables;
use mgmt::api::{Engine, Role};
use mgmt::compile::{compile_once, Compiler};
use mgmt::model::Config;
use mgmt::validate::check;
use serde_json::{json, Value};

type Snapshots = Arc<Mutex<Vec<(Tables, Tables)>>>;

/// An engine whose publisher compiles each accepted config twice: incrementally (as
/// the daemon does) and from scratch.
fn engine() -> (Engine, Snapshots, Tables) {
    let config: Config = serde_json::from_value(fixture()).unwrap();
    let checked = check(&config).unwrap();
    let mut compiler = Compiler::new();
    let first = compiler.compile(&checked);
    let snaps: Snapshots = Arc::default();
    let out = snaps.clone();
    let publish = Box::new(move |c: &mgmt::validate::Checked| {
        let pair = (compiler.compile(c), compile_once(c));
        out.lock().unwrap().push(pair);
    });
    (Engine::new(checked, None, publish), snaps, first)
}

fn ok(e: &mut Engine, req: Value) {
    let answer = e.handle(&req, Role::Admin);
    assert!(answer.get("Error").is_none(), "{req} -> {answer}");
}

fn dirs<'a>(t: &'a Tables, eni: &str) -> [&'a Arc<SgDirection>; 2] {
    let e = t.eni_by_name(eni).unwrap();
    [&e.sg_ingress, &e.sg_egress]
}

/// Same rules, same open sets, same answer to every probe.
fn assert_same(a: &SgDirection, b: &SgDirection, what: &str) {
    assert_eq!(a.rules, b.rules, "{what}: rules");
    assert_eq!(a.match_count(), b.match_count(), "{what}: matches");
    for f in [Family::V4, Family::V6] {
        assert_eq!(a.open(f), b.open(f), "{what}: open rules");
    }
    let peers: [u128; 6] = [
        u32::from(std::net::Ipv4Addr::new(198, 18, 1, 10)) as u128,
        u32::from(std::net::Ipv4Addr::new(198, 18, 2, 20)) as u128,
        u32::from(std::net::Ipv4Addr::new(198, 18, 2, 7)) as u128,
        u32::from(std::net::Ipv4Addr::new(100, 68, 1, 1)) as u128,
        u32::from(std::net::Ipv4Addr::new(8, 8, 8, 8)) as u128,
        0x2600_1f18_aaaa_0001_0000_0000_0000_0010,
    ];
    for proto in [6u8, 17, 1] {
        for port in [22u16, 80, 443, 5432, 8080, 9000] {
            for &peer in &peers {
                let family = if peer > u32::MAX as u128 { Family::V6 } else { Family::V4 };
                assert_eq!(
                    a.judge(family, proto, port, peer),
                    b.judge(family, proto, port, peer),
                    "{what}: {proto}/{port} {peer:x}"
                );
            }
        }
    }
}

/// The latest snapshot equals a fresh compile; returns it with which of the ENIs'
/// directions ([a in, a out, b in, b out]) were reused from `before`.
fn check_latest(snaps: &Snapshots, before: &Tables) -> (Tables, [bool; 4]) {
    let (inc, fresh) = snaps.lock().unwrap().last().cloned().unwrap();
    let mut reused = [false; 4];
    for (i, eni) in [ENI_A, ENI_B].into_iter().enumerate() {
        for d in 0..2 {
            assert_same(dirs(&inc, eni)[d], dirs(&fresh, eni)[d], &format!("{eni} dir {d}"));
            reused[i * 2 + d] = Arc::ptr_eq(dirs(&inc, eni)[d], dirs(before, eni)[d]);
        }
    }
    (inc, reused)
}

#[test]
fn incremental_snapshots_judge_like_fresh_ones_and_rebuild_only_what_changed() {
    let (mut e, snaps, first) = engine();

    // A rule in web's ingress: only ENI a's ingress is rebuilt.
    ok(
        &mut e,
        json!({"Action": "AuthorizeSecurityGroupIngress", "GroupId": SG_WEB,
                      "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "198.18.2.0/24"}]}]}),
    );
    let (t1, reused) = check_latest(&snaps, &first);
    assert_eq!(reused, [false, true, true, true]);

    // ENI a joins app: db's rule "5432 from app" now covers a's addresses, so b's
    // ingress is rebuilt (a's groups changed: both of a's directions too).
    ok(
        &mut e,
        json!({"Action": "ModifyNetworkInterfaceAttribute", "NetworkInterfaceId": ENI_A, "Groups": [SG_WEB, SG_APP]}),
    );
    let (t2, reused) = check_latest(&snaps, &t1);
    assert_eq!(reused, [false, false, false, true]);
    let a_ip = u32::from(std::net::Ipv4Addr::new(198, 18, 1, 10)) as u128;
    assert!(dirs(&t2, ENI_B)[0].judge(Family::V4, 6, 5432, a_ip).is_some(), "a is a member of app now");
    assert!(dirs(&t1, ENI_B)[0].judge(Family::V4, 6, 5432, a_ip).is_none(), "it was not before");

    // A NACL change leaves every group alone.
    ok(
        &mut e,
        json!({"Action": "ReplaceNetworkAclEntry", "NetworkAclId": NACL_1, "RuleNumber": 100, "Protocol": "6",
                      "PortRange": {"From": 1, "To": 65535}, "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0"}),
    );
    let (t3, reused) = check_latest(&snaps, &t2);
    assert_eq!(reused, [true; 4]);

    // Egress of db: only b's egress.
    ok(
        &mut e,
        json!({"Action": "RevokeSecurityGroupEgress", "GroupId": SG_DB,
                      "IpPermissions": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}),
    );
    let (t4, reused) = check_latest(&snaps, &t3);
    assert_eq!(reused, [true, true, true, false]);

    // a leaves app again: b's ingress no longer admits it.
    ok(&mut e, json!({"Action": "ModifyNetworkInterfaceAttribute", "NetworkInterfaceId": ENI_A, "Groups": [SG_WEB]}));
    let (t5, reused) = check_latest(&snaps, &t4);
    assert_eq!(reused, [false, false, false, true]);
    assert!(dirs(&t5, ENI_B)[0].judge(Family::V4, 6, 5432, a_ip).is_none());

    // Deleting a group nobody uses and re-creating rules leaves the ENIs alone.
    ok(&mut e, json!({"Action": "DeleteSecurityGroup", "GroupId": SG_SPARE}));
    let (_, reused) = check_latest(&snaps, &t5);
    assert_eq!(reused, [true; 4]);
}
