//! One test per row of the spec's decisions tables (sections 7 and 7.1), named after
//! the behaviour, run through the real pipeline with a controlled clock.

mod support;

use dataplane::pipeline::{DropReason, PipelineConfig};
use dataplane::testkit::{self, Flags, Host};
use mgmt::model::{Config, ConnectionTrackingConfiguration, NetworkAclEntry};
use mgmt::validate::check;
use support::harness::Harness;
use support::small::{self, *};

fn tcp(h: &mut Harness, port: &str, from: &Host, to: &Host, sport: u16, dport: u16, flags: Flags) -> String {
    let f = testkit::tcp(from, to.ip, router(), sport, dport, flags, 1, 1, b"");
    h.verdict(port, &f)
}

fn udp(h: &mut Harness, port: &str, from: &Host, to: &Host, sport: u16, dport: u16) -> String {
    let f = testkit::udp(from, to.ip, router(), sport, dport, b"u");
    h.verdict(port, &f)
}

fn harness_with(change: impl FnOnce(&mut Config)) -> Harness {
    let mut cfg = small::config();
    change(&mut cfg);
    Harness::new(cfg)
}

fn eni_entries(h: &Harness, eni: &str) -> u32 {
    h.pipeline.conntrack.eni_len(h.tables.eni_by_name(eni).unwrap().key)
}

fn error_code(cfg: &Config) -> String {
    check(cfg).err().map(|e| e.code).unwrap_or_else(|| "accepted".into())
}

// ---- SG reference match set

#[test]
fn sg_reference_matches_every_private_ipv4_and_ipv6_of_members() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm_group("tcp", 22, 22, SG_A)));
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 1000, 22, Flags::SYN), "forward:pc", "primary IPv4");
    assert_eq!(tcp(&mut h, "pa", &a2(), &c(), 1001, 22, Flags::SYN), "forward:pc", "secondary IPv4");
    assert_eq!(tcp(&mut h, "pa", &a6(), &c6(), 1002, 22, Flags::SYN), "forward:pc", "IPv6");
    assert_eq!(tcp(&mut h, "pb", &b(), &c(), 1003, 22, Flags::SYN), "reject:sg-ingress", "not a member");
}

#[test]
fn sg_reference_follows_membership_changes() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm_group("tcp", 22, 22, SG_A)));
    assert_eq!(tcp(&mut h, "pb", &b(), &c(), 1003, 22, Flags::SYN), "reject:sg-ingress");
    h.update(|cfg| {
        let eni = cfg.network_interfaces.iter_mut().find(|n| n.network_interface_id == ENI_B).unwrap();
        eni.groups.push(mgmt::model::GroupIdentifier { group_id: SG_A.into(), group_name: None });
    });
    assert_eq!(tcp(&mut h, "pb", &b(), &c(), 1004, 22, Flags::SYN), "forward:pc");
}

// ---- validation decisions

#[test]
fn duplicate_rule_is_refused_whatever_the_description() {
    let mut cfg = small::config();
    let mut p1 = perm("tcp", 22, 22, "10.0.0.18/8");
    p1.ip_ranges[0].description = Some("one".into());
    let mut p2 = perm("tcp", 22, 22, "10.0.0.0/8");
    p2.ip_ranges[0].description = Some("two".into());
    sg(&mut cfg, SG_A).ip_permissions = vec![p1, p2];
    let e = check(&cfg).unwrap_err();
    assert_eq!(e.code, "InvalidPermission.Duplicate");
    assert!(e.message.contains("peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW"), "{}", e.message);
}

#[test]
fn from_port_greater_than_to_port_is_invalid_parameter_value() {
    let mut cfg = small::config();
    sg(&mut cfg, SG_A).ip_permissions = vec![perm("tcp", 90, 80, "0.0.0.0/0")];
    let e = check(&cfg).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e.message.starts_with("Invalid port range: FromPort (90) is greater than ToPort (80)"), "{}", e.message);
    assert!(e.message.contains("SecurityGroups[0].IpPermissions[0]"), "names the field: {}", e.message);
}

#[test]
fn default_security_group_and_nacl_are_created_as_aws_does() {
    let mut cfg = small::config();
    cfg.network_interfaces[1].groups.clear();
    let checked = check(&cfg).unwrap();
    let d = checked.config.security_groups.iter().find(|g| g.group_name == "default").unwrap();
    assert_eq!(
        d.ip_permissions[0].user_id_group_pairs[0].group_id.as_deref(),
        Some(d.group_id.as_str()),
        "all from itself"
    );
    assert_eq!(d.ip_permissions_egress[0].ip_ranges[0].cidr_ip, "0.0.0.0/0");
    assert_eq!(d.ip_permissions_egress[0].ipv6_ranges[0].cidr_ipv6, "::/0", "the VPC has IPv6");
    assert_eq!(
        checked.config.network_interfaces[1].groups[0].group_id, d.group_id,
        "an ENI without groups gets the default SG"
    );
    let n = checked.config.network_acls.iter().find(|n| n.is_default).unwrap();
    assert_eq!(n.entries.iter().filter(|e| e.rule_number == 100 || e.rule_number == 101).count(), 4);
}

// ---- TCP timeouts and states

fn open_tcp(h: &mut Harness, sport: u16) {
    assert_eq!(tcp(h, "pa", &a(), &c(), sport, 80, Flags::SYN), "forward:pc");
    assert_eq!(tcp(h, "pc", &c(), &a(), 80, sport, Flags::SYN_ACK), "forward:pa");
    assert_eq!(tcp(h, "pa", &a(), &c(), sport, 80, Flags::ACK), "forward:pc");
}

fn web_on_c() -> Harness {
    harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("tcp", 80, 80, "198.18.0.0/16")))
}

/// After the rule is gone, only a live conntrack entry lets c's reply-direction
/// traffic... and a's packets through: this is how timeouts are observed.
fn revoke_c_ingress(h: &mut Harness) {
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
}

#[test]
fn tcp_handshake_not_completed_expires_after_60_s() {
    let mut h = web_on_c();
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2000, 80, Flags::SYN), "forward:pc");
    revoke_c_ingress(&mut h);
    h.advance_secs(60.0);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2000, 80, Flags::SYN), "forward:pc", "idle == 60 s is not expired");
    h.advance_secs(60.001);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2000, 80, Flags::SYN), "reject:sg-ingress", "idle > 60 s");
}

#[test]
fn tcp_established_uses_the_eni_timeout_default_432000_s() {
    let mut h = web_on_c();
    open_tcp(&mut h, 2001);
    revoke_c_ingress(&mut h);
    h.advance_secs(431_999.0);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2001, 80, Flags::ACK), "forward:pc");
    h.advance_secs(432_000.5);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2001, 80, Flags::ACK), "reject:sg-ingress");
}

#[test]
fn tcp_established_timeout_is_per_eni_and_ends_expire_separately() {
    let mut h = web_on_c();
    h.update(|cfg| {
        cfg.network_interfaces[2].connection_tracking_configuration =
            Some(ConnectionTrackingConfiguration { tcp_established_timeout: Some(120), ..Default::default() });
        sg(cfg, SG_A).ip_permissions.push(perm("tcp", 1, 65535, "198.18.2.0/24"));
    });
    open_tcp(&mut h, 2002);
    revoke_c_ingress(&mut h);
    h.advance_secs(121.0);
    // c's entry (120 s) has expired; a's (432000 s) has not.
    let steps = h.explain("pa", &testkit::tcp(&a(), c().ip, router(), 2002, 80, Flags::ACK, 1, 1, b""));
    assert!(steps.iter().any(|s| s.contains("sg-egress at eni-0000000000000000a: tracked connection")), "{steps:#?}");
    assert!(steps.iter().any(|s| s.contains("sg-ingress at eni-0000000000000000c: no rule")), "{steps:#?}");
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2002, 80, Flags::ACK), "reject:sg-ingress");
}

#[test]
fn tcp_established_timeout_range_is_enforced() {
    for (v, ok) in [(59, false), (60, true), (432_000, true), (432_001, false)] {
        let mut cfg = small::config();
        cfg.network_interfaces[0].connection_tracking_configuration =
            Some(ConnectionTrackingConfiguration { tcp_established_timeout: Some(v), ..Default::default() });
        assert_eq!(check(&cfg).is_ok(), ok, "TcpEstablishedTimeout {v}");
    }
}

#[test]
fn tcp_after_fin_both_ways_or_rst_lives_10_s() {
    for close in ["fin", "rst"] {
        let mut h = web_on_c();
        open_tcp(&mut h, 2003);
        if close == "fin" {
            assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2003, 80, Flags::FIN_ACK), "forward:pc");
            assert_eq!(tcp(&mut h, "pc", &c(), &a(), 80, 2003, Flags::FIN_ACK), "forward:pa");
        } else {
            assert_eq!(tcp(&mut h, "pc", &c(), &a(), 80, 2003, Flags::RST), "forward:pa");
        }
        revoke_c_ingress(&mut h);
        h.advance_secs(10.0);
        assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2003, 80, Flags::ACK), "forward:pc", "{close}: 10 s is not expired");
        h.advance_secs(10.5);
        assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2003, 80, Flags::ACK), "reject:sg-ingress", "{close}: > 10 s");
    }
}

#[test]
fn tcp_fin_one_way_keeps_the_established_timeout() {
    let mut h = web_on_c();
    open_tcp(&mut h, 2004);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2004, 80, Flags::FIN_ACK), "forward:pc");
    revoke_c_ingress(&mut h);
    h.advance_secs(3600.0);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2004, 80, Flags::ACK), "forward:pc");
}

#[test]
fn tcp_without_an_entry_is_judged_by_the_rules_whatever_its_flags() {
    let mut h = web_on_c();
    // A bare ACK with no entry is forwarded (no "invalid state" drops) and creates entries.
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2005, 80, Flags::ACK), "forward:pc");
    assert_eq!(eni_entries(&h, ENI_C), 1);
    assert_eq!(eni_entries(&h, ENI_A), 1);
    // A late SYN-ACK from c with no entry: c's egress allows all, a has no inbound rule.
    assert_eq!(tcp(&mut h, "pc", &c(), &a(), 81, 2006, Flags::SYN_ACK), "reject:sg-ingress");
    // The entry created mid-stream is in handshake state: 60 s idle ends it.
    revoke_c_ingress(&mut h);
    h.advance_secs(61.0);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 2005, 80, Flags::ACK), "reject:sg-ingress");
}

// ---- UDP

#[test]
fn udp_single_direction_uses_udp_timeout_then_stream_after_two_each_way() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3000, 53), "forward:pc");
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    h.advance_secs(30.0);
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3000, 53), "forward:pc", "30 s is not expired");
    h.advance_secs(30.5);
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3000, 53), "reject:sg-ingress");

    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    for _ in 0..2 {
        assert_eq!(udp(&mut h, "pa", &a(), &c(), 3001, 53), "forward:pc");
        assert_eq!(udp(&mut h, "pc", &c(), &a(), 53, 3001), "forward:pa");
    }
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    h.advance_secs(179.0);
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3001, 53), "forward:pc", "a stream lives UdpStreamTimeout (180 s)");
    h.advance_secs(180.5);
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3001, 53), "reject:sg-ingress");
}

#[test]
fn udp_one_request_one_response_is_not_a_stream() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3002, 53), "forward:pc");
    assert_eq!(udp(&mut h, "pc", &c(), &a(), 53, 3002), "forward:pa");
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3002, 53), "forward:pc");
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    h.advance_secs(31.0);
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3002, 53), "reject:sg-ingress", "c answered only once");
}

// ---- ICMP and other protocols

#[test]
fn icmp_queries_are_tracked_30_s_by_type_and_identifier() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("icmp", -1, -1, "198.18.0.0/16")));
    let ping = |h: &mut Harness, id: u16| h.verdict("pa", &testkit::echo(&a(), c().ip, router(), id, 1, false));
    assert_eq!(ping(&mut h, 1), "forward:pc");
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    // The reply comes back by state at a (a has no inbound ICMP rule).
    assert_eq!(h.verdict("pc", &testkit::echo(&c(), a().ip, router(), 1, 1, true)), "forward:pa");
    assert_eq!(
        h.verdict("pc", &testkit::echo(&c(), a().ip, router(), 2, 1, true)),
        "reject:sg-ingress",
        "other identifier"
    );
    h.advance_secs(30.0);
    assert_eq!(ping(&mut h, 1), "forward:pc");
    h.advance_secs(30.5);
    assert_eq!(ping(&mut h, 1), "reject:sg-ingress");
    // Timestamp (13/14), information (15/16), address mask (17/18) and ICMPv6 echo.
    let mut h = harness_with(|cfg| {
        sg(cfg, SG_C).ip_permissions.push(perm("icmp", -1, -1, "198.18.0.0/16"));
        sg(cfg, SG_C).ip_permissions.push(perm("icmpv6", 128, -1, "::/0"));
    });
    for (req, rep) in [(13u8, 14u8), (15, 16), (17, 18)] {
        let q = testkit::icmp(&a(), c().ip, router(), req, 0, [0, 9, 0, 1], b"");
        let r = testkit::icmp(&c(), a().ip, router(), rep, 0, [0, 9, 0, 1], b"");
        assert_eq!(h.verdict("pa", &q), "forward:pc", "type {req}");
        assert_eq!(h.verdict("pc", &r), "forward:pa", "type {rep} answers by state");
    }
    assert_eq!(h.verdict("pa", &testkit::echo(&a6(), c6().ip, router(), 5, 1, false)), "forward:pc");
    assert_eq!(h.verdict("pc", &testkit::echo(&c6(), a6().ip, router(), 5, 1, true)), "forward:pa");
}

#[test]
fn other_protocols_are_tracked_by_address_and_protocol_for_600_s() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("47", 0, 0, "198.18.0.0/16")));
    let gre = |from: &Host, to: &Host| testkit::other(from, to.ip, router(), 47, b"gre");
    assert_eq!(h.verdict("pa", &gre(&a(), &c())), "forward:pc");
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    h.advance_secs(600.0);
    assert_eq!(h.verdict("pa", &gre(&a(), &c())), "forward:pc");
    h.advance_secs(600.5);
    assert_eq!(h.verdict("pa", &gre(&a(), &c())), "reject:sg-ingress");
}

#[test]
fn icmp_errors_about_tracked_flows_are_related_traffic() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    let query = testkit::udp(&a(), c().ip, router(), 3100, 53, b"q");
    assert_eq!(h.verdict("pa", &query), "forward:pc");
    // c answers with port unreachable: a has no inbound ICMP rule, but it is related.
    let unreach = testkit::icmp_error(&c(), a().ip, router(), 3, 3, &query);
    assert_eq!(h.verdict("pc", &unreach), "forward:pa");
    // The same error about a flow nobody opened is judged by the rules.
    let stray = testkit::udp(&a(), c().ip, router(), 3101, 54, b"q");
    let unrelated = testkit::icmp_error(&c(), a().ip, router(), 3, 3, &stray);
    assert_eq!(h.verdict("pc", &unrelated), "reject:sg-ingress");
    // Time exceeded from an internet router about a's flow out.
    let mut h = harness_with(|_| {});
    let out = testkit::tcp(&a(), x().ip, router(), 3102, 443, Flags::SYN, 1, 0, b"");
    assert_eq!(h.verdict("pa", &out), "forward:inet");
    let router_far = Host::new("02:00:00:00:ff:01", "198.19.9.9");
    assert_eq!(h.verdict("inet", &testkit::icmp_error(&router_far, a().ip, router(), 11, 0, &out)), "forward:pa");
}

// ---- conntrack capacity

#[test]
fn conntrack_full_drops_new_flows_counts_them_and_spares_established_ones() {
    let mut cfg = small::config();
    cfg.appliance.conntrack.max_entries = 4;
    sg(&mut cfg, SG_C).ip_permissions.push(perm("tcp", 80, 80, "198.18.0.0/16"));
    let mut h = Harness::with_pipeline(cfg, PipelineConfig { conntrack_entries: 4, ..Default::default() });
    // Each a->c flow takes an entry at a and one at c.
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 4000, 80, Flags::SYN), "forward:pc");
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 4001, 80, Flags::SYN), "forward:pc");
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 4002, 80, Flags::SYN), "drop:conntrack-full");
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 4000, 80, Flags::ACK), "forward:pc", "established flows are unaffected");
    let ka = h.tables.eni_by_name(ENI_A).unwrap().key;
    let kc = h.tables.eni_by_name(ENI_C).unwrap().key;
    assert_eq!(h.pipeline.stats.per_eni[ka.0 as usize].conntrack_allowance_exceeded, 1);
    assert_eq!(h.pipeline.stats.per_eni[kc.0 as usize].conntrack_allowance_exceeded, 1);
    assert_eq!(h.pipeline.stats.dropped_by(DropReason::ConntrackFull), 1);
    assert_eq!(h.pipeline.conntrack_available(&h.tables, ka), 0);
    // Handshake entries expire after 60 s and free their capacity at the next second.
    h.advance_secs(61.0);
    assert_eq!(tcp(&mut h, "pa", &a(), &c(), 4003, 80, Flags::SYN), "forward:pc");
}

#[test]
fn one_enis_flood_cannot_take_every_other_enis_capacity() {
    let mut cfg = small::config();
    cfg.appliance.conntrack.max_entries_per_eni = 3;
    sg(&mut cfg, SG_C).ip_permissions.push(perm("tcp", 80, 80, "0.0.0.0/0"));
    // Not open on all ports outbound, so the flows are tracked.
    sg(&mut cfg, SG_C).ip_permissions_egress = vec![perm("tcp", 1024, 65535, "0.0.0.0/0")];
    let mut h = Harness::new(cfg);
    for p in 0..3 {
        assert_eq!(tcp(&mut h, "inet", &x(), &c(), 5000 + p, 80, Flags::SYN), "forward:pc");
    }
    assert_eq!(tcp(&mut h, "inet", &x(), &c(), 5003, 80, Flags::SYN), "drop:conntrack-full", "c is at its share");
    assert_eq!(tcp(&mut h, "pa", &a(), &x(), 5004, 443, Flags::SYN), "forward:inet", "a still has room");
}

// ---- untracked flows

#[test]
fn untracked_flows_get_no_entry_and_are_judged_every_packet() {
    let mut h = harness_with(|cfg| {
        sg(cfg, SG_C).ip_permissions.push(perm("tcp", 80, 80, "0.0.0.0/0"));
    });
    assert_eq!(tcp(&mut h, "inet", &x(), &c(), 6000, 80, Flags::SYN), "forward:pc");
    assert_eq!(tcp(&mut h, "pc", &c(), &x(), 80, 6000, Flags::SYN_ACK), "forward:inet");
    assert_eq!(eni_entries(&h, ENI_C), 0, "all-open inbound on 80, all-open outbound: untracked");
    assert_eq!(h.pipeline.stats.untracked, 2);
    // Tracked as soon as the outbound side is no longer open to everything on all ports.
    h.update(|cfg| sg(cfg, SG_C).ip_permissions_egress = vec![perm("tcp", 1024, 65535, "0.0.0.0/0")]);
    assert_eq!(tcp(&mut h, "inet", &x(), &c(), 6001, 80, Flags::SYN), "forward:pc");
    assert_eq!(eni_entries(&h, ENI_C), 1);
}

#[test]
fn untracked_is_decided_per_ip_family() {
    let mut h = harness_with(|cfg| {
        let g = sg(cfg, SG_C);
        g.ip_permissions = vec![perm("tcp", 80, 80, "0.0.0.0/0"), perm("tcp", 80, 80, "::/0")];
        g.ip_permissions_egress = vec![perm_all("::/0")];
    });
    assert_eq!(tcp(&mut h, "inet", &x(), &c(), 6100, 80, Flags::SYN), "forward:pc");
    assert_eq!(eni_entries(&h, ENI_C), 1, "no all-open IPv4 egress: IPv4 is tracked");
    assert_eq!(tcp(&mut h, "inet", &x6(), &c6(), 6101, 80, Flags::SYN), "forward:pc");
    assert_eq!(eni_entries(&h, ENI_C), 1, "IPv6 is untracked");
}

// ---- source/destination check

#[test]
fn source_dest_check_drops_and_counts_foreign_sources() {
    let mut h = harness_with(|_| {});
    let spoofed = Host::new("02:00:00:00:00:0a", "198.18.1.99");
    assert_eq!(tcp(&mut h, "pa", &spoofed, &x(), 7000, 443, Flags::SYN), "drop:src-dst-check");
    let ka = h.tables.eni_by_name(ENI_A).unwrap().key;
    assert_eq!(h.pipeline.stats.per_eni[ka.0 as usize].srcdst_check_dropped, 1);
    h.update(|cfg| cfg.network_interfaces[0].source_dest_check = false);
    assert_eq!(
        tcp(&mut h, "pa", &spoofed, &x(), 7000, 443, Flags::SYN),
        "forward:inet",
        "check disabled (NAT instance)"
    );
}

// ---- fragments

#[test]
fn later_fragments_follow_the_first_and_orphans_are_dropped() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    let big = testkit::udp(&a(), c().ip, router(), 3200, 53, &[1u8; 300]);
    let frags = testkit::fragment(&big, 128, 77);
    for f in &frags {
        assert_eq!(h.verdict("pa", f), "forward:pc");
    }
    let denied = testkit::udp(&a(), c().ip, router(), 3201, 54, &[1u8; 300]);
    let frags = testkit::fragment(&denied, 128, 78);
    for f in &frags {
        assert_eq!(h.verdict("pa", f), "reject:sg-ingress", "later fragments share the first's verdict");
    }
    let orphan = testkit::fragment(&testkit::udp(&a(), c().ip, router(), 3202, 53, &[1u8; 300]), 128, 79);
    assert_eq!(h.verdict("pa", &orphan[1]), "drop:fragment-orphan");
    assert_eq!(h.pipeline.stats.dropped_by(DropReason::FragmentOrphan), 1);
    // Remembered for 30 s.
    let late = testkit::fragment(&testkit::udp(&a(), c().ip, router(), 3203, 53, &[1u8; 300]), 128, 80);
    assert_eq!(h.verdict("pa", &late[0]), "forward:pc");
    h.advance_secs(30.5);
    assert_eq!(h.verdict("pa", &late[1]), "drop:fragment-orphan");
}

// ---- malformed frames

#[test]
fn malformed_frames_are_dropped_counted_and_never_reach_a_rule() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm_all("0.0.0.0/0")));
    let good = testkit::tcp(&a(), c().ip, router(), 8000, 80, Flags::SYN, 1, 0, b"");
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut bad_doff = good.clone();
    bad_doff[14 + 20 + 12] = 0x30;
    for (f, detail) in
        [(bad_ihl, "bad-ipv4-ihl"), (bad_doff, "bad-tcp-data-offset"), (good[..30].to_vec(), "truncated-ipv4")]
    {
        let o = h.send("pa", &f);
        assert_eq!(o.verdict.name(), "drop");
        assert_eq!(o.verdict.reason(), Some("malformed"));
        let dataplane::pipeline::Verdict::Drop(r) = o.verdict else { unreachable!() };
        assert_eq!(r.detail(), Some(detail));
    }
    assert_eq!(h.pipeline.stats.dropped_by(DropReason::Malformed(dataplane::wire::Malformed::Tcp)), 3);
    assert_eq!(eni_entries(&h, ENI_C), 0);
}

// ---- ARP and ND

#[test]
fn arp_and_nd_are_answered_with_the_router_mac_whatever_the_policy() {
    let mut h = harness_with(|cfg| {
        let n = cfg.network_acls.iter_mut().find(|n| n.network_acl_id == NACL_1).unwrap();
        n.entries.clear(); // deny everything
    });
    let req = testkit::arp_request(&a(), "198.18.1.1".parse().unwrap());
    let o = h.send("pa", &req);
    assert_eq!(o.verdict.name(), "reply");
    let mut buf = vec![0u8; 2048];
    buf[..req.len()].copy_from_slice(&req);
    let port = h.tables.port_by_name("pa").unwrap();
    let mut f = dataplane::pipeline::Frame { buf: &mut buf, len: req.len(), port, time: h.now };
    let o = h.pipeline.process_frame(&h.tables, &mut f, &mut ());
    let reply = &buf[o.head..o.head + o.len];
    assert_eq!(&reply[22..28], &router().0, "sender hardware address is the router");
    assert_eq!(&reply[28..32], &[198, 18, 1, 1]);
    assert_eq!(
        h.verdict("pa", &testkit::arp_request(&a(), "198.18.2.10".parse().unwrap())),
        "reply",
        "other subnets too"
    );
    assert_eq!(h.verdict("pa", &testkit::arp_request(&a(), "8.8.8.8".parse().unwrap())), "drop:arp-ignored");
    let ns = testkit::neighbor_solicit(&Host::new("02:00:00:00:00:0a", "fe80::a"), "fe80::1".parse().unwrap());
    assert_eq!(h.verdict("pa", &ns), "reply");
    let ns2 =
        testkit::neighbor_solicit(&Host::new("02:00:00:00:00:0a", "fe80::a"), "2600:1f18:aaaa:2::10".parse().unwrap());
    assert_eq!(h.verdict("pa", &ns2), "reply");
    let dad = testkit::neighbor_solicit(&Host::new("02:00:00:00:00:0a", "::"), "2600:1f18:aaaa:1::10".parse().unwrap());
    assert_eq!(h.verdict("pa", &dad), "drop:nd-ignored", "never answer duplicate-address detection");
}

// ---- reserved addresses and the order of non-policy drops

#[test]
fn reserved_vpc_addresses_are_no_route() {
    let mut h = harness_with(|_| {});
    for last in [1u8, 2, 3, 99] {
        let to = Host::new("00:00:00:00:00:00", &format!("198.18.1.{last}"));
        assert_eq!(udp(&mut h, "pa", &a(), &to, 3300, 53), "drop:no-route", ".{last}");
    }
    let imds = Host::new("00:00:00:00:00:00", "169.254.169.254");
    assert_eq!(tcp(&mut h, "pa", &a(), &imds, 3301, 80, Flags::SYN), "drop:no-route");
    let dhcp = testkit::udp(
        &Host::new("02:00:00:00:00:0a", "0.0.0.0"),
        "255.255.255.255".parse().unwrap(),
        router(),
        68,
        67,
        b"d",
    );
    assert_eq!(h.verdict("pa", &dhcp), "drop:src-dst-check");
}

#[test]
fn non_policy_drops_come_in_the_spec_order() {
    let mut h = harness_with(|_| {});
    // Unknown MAC beats a spoofed source and a bad route.
    let stranger = Host::new("02:00:00:00:00:99", "198.18.1.99");
    let to_reserved = Host::new("00:00:00:00:00:00", "198.18.1.2");
    assert_eq!(udp(&mut h, "pa", &stranger, &to_reserved, 1, 2), "drop:unknown-source");
    // An ENI's MAC on another ENI's port is unknown too.
    assert_eq!(udp(&mut h, "pb", &a(), &c(), 1, 2), "drop:unknown-source");
    // Source check beats route.
    let spoofed = Host::new("02:00:00:00:00:0a", "198.18.1.99");
    assert_eq!(udp(&mut h, "pa", &spoofed, &to_reserved, 1, 2), "drop:src-dst-check");
    // Route beats policy.
    assert_eq!(udp(&mut h, "pa", &a(), &to_reserved, 1, 2), "drop:no-route");
    // From outside: a VPC source address is spoofed.
    let inside = Host::new("02:00:00:00:ff:01", "198.18.1.10");
    assert_eq!(udp(&mut h, "inet", &inside, &c(), 1, 2), "drop:unknown-source");
}

// ---- conntrack updates

#[test]
fn entries_are_created_and_refreshed_only_by_forwarded_frames() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    // Refused at c's NACL? No: refuse at c's SG — a's egress allowed it, but nothing is created.
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3400, 54), "reject:sg-ingress");
    assert_eq!((eni_entries(&h, ENI_A), eni_entries(&h, ENI_C)), (0, 0));
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3401, 53), "forward:pc");
    h.update(|cfg| {
        sg(cfg, SG_C).ip_permissions.clear();
        let n = cfg.network_acls.iter_mut().find(|n| n.network_acl_id == NACL_1).unwrap();
        n.entries.push(NetworkAclEntry {
            rule_number: 10,
            protocol: "17".into(),
            rule_action: "deny".into(),
            egress: true,
            cidr_block: Some("198.18.2.10/32".into()),
            port_range: Some(mgmt::model::PortRange { from: Some(53), to: Some(53) }),
            ..Default::default()
        });
    });
    // Keep sending for 40 s: the frames are refused by the NACL, so they refresh nothing.
    for _ in 0..4 {
        h.advance_secs(10.0);
        assert_eq!(udp(&mut h, "pa", &a(), &c(), 3401, 53), "reject:nacl-egress");
    }
    h.update(|cfg| {
        let n = cfg.network_acls.iter_mut().find(|n| n.network_acl_id == NACL_1).unwrap();
        n.entries.retain(|e| e.rule_number != 10);
    });
    assert_eq!(
        udp(&mut h, "pa", &a(), &c(), 3401, 53),
        "reject:sg-ingress",
        "the entry expired 30 s after the last forwarded frame"
    );
}

#[test]
fn idle_time_counts_from_the_last_forwarded_packet_in_either_direction() {
    let mut h = harness_with(|cfg| sg(cfg, SG_C).ip_permissions.push(perm("udp", 53, 53, "198.18.0.0/16")));
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3500, 53), "forward:pc");
    h.update(|cfg| sg(cfg, SG_C).ip_permissions.clear());
    for _ in 0..5 {
        h.advance_secs(20.0);
        assert_eq!(udp(&mut h, "pc", &c(), &a(), 53, 3500), "forward:pa", "c's replies keep it alive");
    }
    assert_eq!(udp(&mut h, "pa", &a(), &c(), 3500, 53), "forward:pc");
}

// ---- quotas

#[test]
fn quotas_are_enforced_with_ec2_codes_and_can_be_raised() {
    let mut cfg = small::config();
    sg(&mut cfg, SG_A).ip_permissions = (0..61).map(|p| perm("tcp", p, p, "10.0.0.0/8")).collect();
    assert_eq!(error_code(&cfg), "RulesPerSecurityGroupLimitExceeded");
    cfg.appliance.quotas.rules_per_security_group = 100;
    assert_eq!(error_code(&cfg), "accepted");

    let mut cfg = small::config();
    cfg.network_interfaces[0].groups = [SG_A, SG_B, SG_C]
        .iter()
        .map(|g| mgmt::model::GroupIdentifier { group_id: g.to_string(), group_name: None })
        .collect();
    cfg.appliance.quotas.security_groups_per_network_interface = 2;
    assert_eq!(error_code(&cfg), "SecurityGroupsPerInterfaceLimitExceeded");

    let mut cfg = small::config();
    let n = cfg.network_acls.iter_mut().find(|n| n.network_acl_id == NACL_1).unwrap();
    for i in 0..19 {
        n.entries.push(NetworkAclEntry {
            rule_number: 200 + i,
            protocol: "-1".into(),
            rule_action: "deny".into(),
            egress: false,
            cidr_block: Some(format!("10.{i}.0.0/16")),
            ..Default::default()
        });
    }
    assert_eq!(error_code(&cfg), "NetworkAclEntryLimitExceeded", "20 ingress IPv4 entries plus the default deny");
    cfg.appliance.quotas.network_acl_entries_per_acl = 40;
    assert_eq!(error_code(&cfg), "accepted");
}
