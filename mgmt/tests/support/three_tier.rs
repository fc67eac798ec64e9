//! The three-tier scenario of `shared/spec/three-tier.md` as frames: hosts, the
//! attempts of its table, and what each should do. Used by the capture generator
//! (`cargo run -p mgmt --example three_tier_captures`) and the scenario tests.

#![allow(dead_code)]

use std::net::IpAddr;

use dataplane::addr::Mac;
use dataplane::testkit::{self, Flags, Host};

pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/three-tier/config.json");
pub const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/three-tier/captures");

pub fn router() -> Mac {
    Mac::parse("02:76:70:63:67:01").unwrap()
}

/// A host and the appliance port its frames arrive on.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub host: Host,
    pub port: &'static str,
}

fn ep(mac: &str, ip: &str, port: &'static str) -> Endpoint {
    Endpoint { host: Host::new(mac, ip), port }
}

/// Frames from outside arrive from the upstream router's MAC.
const GATEWAY: &str = "02:00:00:00:ff:01";

pub fn web() -> Endpoint {
    ep("02:00:00:00:01:0a", "198.18.1.10", "web")
}
pub fn bastion() -> Endpoint {
    ep("02:00:00:00:01:14", "198.18.1.20", "bastion")
}
pub fn app() -> Endpoint {
    ep("02:00:00:00:02:0a", "198.18.2.10", "app")
}
pub fn db() -> Endpoint {
    ep("02:00:00:00:03:0a", "198.18.3.10", "db")
}
pub fn client() -> Endpoint {
    ep(GATEWAY, "198.19.0.10", "internet")
}
pub fn admin() -> Endpoint {
    ep(GATEWAY, "203.0.113.10", "internet")
}
pub fn attacker() -> Endpoint {
    ep(GATEWAY, "198.19.66.6", "internet")
}

/// A frame as it arrives at the appliance: on which port, when, which bytes.
#[derive(Clone)]
pub struct Arrival {
    pub port: &'static str,
    pub at_ms: u64,
    pub frame: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every frame of the conversation is forwarded.
    Connects,
    /// Every frame is refused, by this hop.
    Refused(&'static str),
}

pub struct Attempt {
    pub row: &'static str,
    pub file: &'static str,
    pub what: &'static str,
    pub expect: Expect,
    pub frames: Vec<Arrival>,
}

/// Time of the first frame of every capture (2026-11-22T00:00:00Z).
pub const EPOCH_MS: u64 = 1_795_305_600_000;

fn to(e: &Endpoint) -> IpAddr {
    e.host.ip
}

/// A whole TCP conversation (handshake, request, response, close) from `a` to `b`,
/// or, when `connects` is false, a SYN and its two retransmissions.
pub fn tcp_conversation(a: &Endpoint, b: &Endpoint, sport: u16, dport: u16, connects: bool) -> Vec<Arrival> {
    let r = router();
    let (isn_a, isn_b) = (1_000_000u32, 5_000_000u32);
    let seg = |from: &Endpoint, to_e: &Endpoint, fwd: bool, flags: Flags, seq: u32, ack: u32, payload: &[u8]| {
        let (sp, dp) = if fwd { (sport, dport) } else { (dport, sport) };
        testkit::tcp(&from.host, to(to_e), r, sp, dp, flags, seq, ack, payload)
    };
    if !connects {
        return [0, 1000, 3000]
            .into_iter()
            .map(|t| Arrival { port: a.port, at_ms: t, frame: seg(a, b, true, Flags::SYN, isn_a, 0, &[]) })
            .collect();
    }
    let req = b"GET / HTTP/1.1\r\nHost: vpcgate\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (a1, b1) = (isn_a + 1, isn_b + 1);
    let a2 = a1 + req.len() as u32;
    let b2 = b1 + resp.len() as u32;
    let steps: Vec<(bool, Flags, u32, u32, &[u8])> = vec![
        (true, Flags::SYN, isn_a, 0, &[]),
        (false, Flags::SYN_ACK, isn_b, a1, &[]),
        (true, Flags::ACK, a1, b1, &[]),
        (true, Flags::PSH_ACK, a1, b1, req),
        (false, Flags::PSH_ACK, b1, a2, resp),
        (true, Flags::FIN_ACK, a2, b2, &[]),
        (false, Flags::FIN_ACK, b2, a2 + 1, &[]),
        (true, Flags::ACK, a2 + 1, b2 + 1, &[]),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (fwd, flags, seq, ack, payload))| {
            let (from, to_e) = if fwd { (a, b) } else { (b, a) };
            Arrival { port: from.port, at_ms: i as u64 * 10, frame: seg(from, to_e, fwd, flags, seq, ack, payload) }
        })
        .collect()
}

fn pings(a: &Endpoint, b: &Endpoint) -> Vec<Arrival> {
    (0..3u16)
        .map(|seq| Arrival {
            port: a.port,
            at_ms: seq as u64 * 1000,
            frame: testkit::echo(&a.host, to(b), router(), 0x4242, seq, false),
        })
        .collect()
}

/// Rows 1-13b of the scenario table.
pub fn attempts() -> Vec<Attempt> {
    use Expect::*;
    let t = |row, file, what, expect, frames| Attempt { row, file, what, expect, frames };
    vec![
        t(
            "1",
            "01-client-web-80",
            "client -> web tcp/80",
            Connects,
            tcp_conversation(&client(), &web(), 40001, 80, true),
        ),
        t(
            "2",
            "02-client-web-443",
            "client -> web tcp/443",
            Connects,
            tcp_conversation(&client(), &web(), 40002, 443, true),
        ),
        t(
            "3",
            "03-admin-web-22",
            "admin -> web tcp/22",
            Refused("sg-ingress"),
            tcp_conversation(&admin(), &web(), 40003, 22, false),
        ),
        t(
            "4",
            "04-admin-bastion-22",
            "admin -> bastion tcp/22",
            Connects,
            tcp_conversation(&admin(), &bastion(), 40004, 22, true),
        ),
        t(
            "5",
            "05-bastion-db-22",
            "bastion -> db tcp/22",
            Connects,
            tcp_conversation(&bastion(), &db(), 40005, 22, true),
        ),
        t(
            "6",
            "06-client-db-3306",
            "client -> db tcp/3306",
            Refused("sg-ingress"),
            tcp_conversation(&client(), &db(), 40006, 3306, false),
        ),
        t("7", "07-web-app-8080", "web -> app tcp/8080", Connects, tcp_conversation(&web(), &app(), 40007, 8080, true)),
        t(
            "8a",
            "08a-web-app-22",
            "web -> app tcp/22",
            Refused("sg-ingress"),
            tcp_conversation(&web(), &app(), 40008, 22, false),
        ),
        t(
            "8b",
            "08b-web-db-3306",
            "web -> db tcp/3306",
            Refused("sg-egress"),
            tcp_conversation(&web(), &db(), 40009, 3306, false),
        ),
        t("9", "09-app-db-3306", "app -> db tcp/3306", Connects, tcp_conversation(&app(), &db(), 40010, 3306, true)),
        t(
            "10",
            "10-db-client-443",
            "db -> client tcp/443",
            Refused("sg-egress"),
            tcp_conversation(&db(), &client(), 40011, 443, false),
        ),
        t(
            "11",
            "11-app-client-443",
            "app -> client tcp/443",
            Connects,
            tcp_conversation(&app(), &client(), 40012, 443, true),
        ),
        t(
            "12",
            "12-attacker-web-80",
            "attacker -> web tcp/80",
            Refused("nacl-ingress"),
            tcp_conversation(&attacker(), &web(), 40013, 80, false),
        ),
        t("13", "13-client-web-icmp", "client -> web ICMP echo", Refused("nacl-ingress"), pings(&client(), &web())),
        t(
            "13b",
            "13b-client-web-8080",
            "client -> web tcp/8080",
            Refused("sg-ingress"),
            tcp_conversation(&client(), &web(), 40014, 8080, false),
        ),
    ]
}
