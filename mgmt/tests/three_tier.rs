//! The three-tier scenario (shared/spec/three-tier.md): rows 1-13b replayed from the
//! checked-in captures through `vpcgate replay`'s code path, rows 14-16 through the
//! pipeline with the tables swapped between packets.

mod support;

use std::path::PathBuf;

use dataplane::testkit::{self, Flags};
use mgmt::model::{IpPermission, IpRange, NetworkAclEntry, SecurityGroup};
use mgmt::replay::{replay, ReplayOptions};
use support::harness::Harness;
use support::three_tier::{self as tt, Expect};

fn capture(file: &str) -> PathBuf {
    PathBuf::from(tt::CAPTURES).join(format!("{file}.pcapng"))
}

#[test]
fn checked_in_captures_match_the_generator() {
    for a in tt::attempts() {
        let frames = dataplane::port::pcap::read_capture(&capture(a.file)).unwrap();
        assert_eq!(
            frames.len(),
            a.frames.len(),
            "row {}: regenerate with `cargo run -p mgmt --example three_tier_captures`",
            a.row
        );
        for (got, want) in frames.iter().zip(&a.frames) {
            assert_eq!(got.data, want.frame, "row {}", a.row);
            assert_eq!(got.interface.as_deref(), Some(want.port), "row {}", a.row);
        }
    }
}

#[test]
fn rows_1_to_13b_replay_as_the_scenario_table_says() {
    let dir = std::env::temp_dir().join(format!("vpcgate-three-tier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for a in tt::attempts() {
        let verdicts = dir.join(format!("{}.jsonl", a.file));
        let out = dir.join(format!("{}.out.pcapng", a.file));
        let opts = ReplayOptions {
            config: PathBuf::from(tt::CONFIG),
            pcap: capture(a.file),
            verdicts: Some(verdicts.clone()),
            out: Some(out.clone()),
            port: None,
            explain: false,
            flow_log_root: None,
            stats: None,
        };
        let summary = replay(&opts).unwrap_or_else(|e| panic!("row {}: {e}", a.row));
        assert_eq!(summary.frames as usize, a.frames.len());
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(&verdicts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), a.frames.len(), "row {}", a.row);
        let sent = dataplane::port::pcap::read_capture(&out).unwrap();
        for (i, (v, arrival)) in lines.iter().zip(&a.frames).enumerate() {
            assert_eq!(v["frame"], i, "row {}", a.row);
            match a.expect {
                Expect::Connects => {
                    assert_eq!(v["verdict"], "forward", "row {} ({}) frame {i}: {v}", a.row, a.what);
                    // Each frame leaves by the port of the other end of the conversation.
                    let first_port = a.frames[0].port;
                    let other = a.frames.iter().map(|f| f.port).find(|p| *p != first_port).unwrap();
                    let expected = if arrival.port == first_port { other } else { first_port };
                    assert_eq!(v["egress_port"], expected, "row {} frame {i}", a.row);
                }
                Expect::Refused(hop) => {
                    assert_eq!(v["verdict"], "reject", "row {} ({}) frame {i}: {v}", a.row, a.what);
                    assert_eq!(v["reason"], hop, "row {} ({}) frame {i}", a.row, a.what);
                }
            }
        }
        match a.expect {
            Expect::Connects => assert_eq!(sent.len(), a.frames.len(), "row {}: every frame written out", a.row),
            Expect::Refused(_) => assert!(sent.is_empty(), "row {}: nothing leaves", a.row),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn forwarded_frames_are_rewritten_for_their_next_hop() {
    let mut h = Harness::from_file(tt::CONFIG);
    let (client, web) = (tt::client(), tt::web());
    let syn = testkit::tcp(&client.host, web.host.ip, tt::router(), 40001, 80, Flags::SYN, 1, 0, &[]);
    let port = h.tables.port_by_name("internet").unwrap();
    let mut buf = vec![0u8; 2048];
    buf[..syn.len()].copy_from_slice(&syn);
    let mut f = dataplane::pipeline::Frame { buf: &mut buf, len: syn.len(), port, time: h.now };
    let o = h.pipeline.process_frame(&h.tables, &mut f, &mut ());
    let out = &buf[o.head..o.head + o.len];
    assert_eq!(&out[0..6], &web.host.mac.0, "to the ENI's MAC");
    assert_eq!(&out[6..12], &tt::router().0, "from the router's MAC");
    assert_eq!(&out[12..], &syn[12..], "IP packet untouched (no TTL change, as in a VPC)");
}

/// A connection as the tests below drive it: handshake, then data both ways.
struct Conn {
    client: tt::Endpoint,
    server: tt::Endpoint,
    sport: u16,
    dport: u16,
}

impl Conn {
    fn client_sends(&self, h: &mut Harness, flags: Flags) -> String {
        let f = testkit::tcp(
            &self.client.host,
            self.server.host.ip,
            tt::router(),
            self.sport,
            self.dport,
            flags,
            1,
            1,
            b"x",
        );
        h.verdict(self.client.port, &f)
    }
    fn server_sends(&self, h: &mut Harness, flags: Flags) -> String {
        let f = testkit::tcp(
            &self.server.host,
            self.client.host.ip,
            tt::router(),
            self.dport,
            self.sport,
            flags,
            1,
            1,
            b"y",
        );
        h.verdict(self.server.port, &f)
    }
    fn open(&self, h: &mut Harness) {
        assert_eq!(self.client_sends(h, Flags::SYN), format!("forward:{}", self.server.port));
        assert_eq!(self.server_sends(h, Flags::SYN_ACK), format!("forward:{}", self.client.port));
        assert_eq!(self.client_sends(h, Flags::ACK), format!("forward:{}", self.server.port));
    }
}

fn web_sg(h: &mut mgmt::model::Config) -> &mut SecurityGroup {
    h.security_groups.iter_mut().find(|g| g.group_name == "web-sg").unwrap()
}

#[test]
fn row_14_revoking_an_sg_rule_keeps_tracked_connections_and_refuses_new_ones() {
    let mut h = Harness::from_file(tt::CONFIG);
    let c = Conn { client: tt::client(), server: tt::web(), sport: 40101, dport: 80 };
    c.open(&mut h);
    h.update(|cfg| web_sg(cfg).ip_permissions.retain(|p| p.from_port != Some(80)));
    h.advance_secs(5.0);
    assert_eq!(c.client_sends(&mut h, Flags::PSH_ACK), "forward:web", "the open connection keeps working");
    assert_eq!(c.server_sends(&mut h, Flags::PSH_ACK), "forward:internet");
    let fresh = Conn { sport: 40102, ..c };
    assert_eq!(fresh.client_sends(&mut h, Flags::SYN), "reject:sg-ingress", "a new connection is refused");
}

#[test]
fn row_15_revoking_the_rule_of_an_untracked_flow_stops_it_at_once() {
    let mut h = Harness::from_file(tt::CONFIG);
    let open_sg = "sg-0f00d00000000e005";
    h.update(|cfg| {
        let mut g = web_sg(cfg).clone();
        g.group_id = open_sg.into();
        g.group_name = "open-sg".into();
        let any = IpRange { cidr_ip: "0.0.0.0/0".into(), description: None };
        g.ip_permissions = vec![IpPermission {
            ip_protocol: "tcp".into(),
            from_port: Some(80),
            to_port: Some(80),
            ip_ranges: vec![any.clone()],
            ..Default::default()
        }];
        g.ip_permissions_egress =
            vec![IpPermission { ip_protocol: "-1".into(), ip_ranges: vec![any], ..Default::default() }];
        cfg.security_groups.push(g);
        let web = cfg.network_interfaces.iter_mut().find(|n| n.network_interface_id.ends_with("b001")).unwrap();
        web.groups = vec![mgmt::model::GroupIdentifier { group_id: open_sg.into(), group_name: None }];
    });
    let c = Conn { client: tt::client(), server: tt::web(), sport: 40201, dport: 80 };
    c.open(&mut h);
    assert_eq!(c.client_sends(&mut h, Flags::PSH_ACK), "forward:web");
    assert_eq!(
        h.pipeline.conntrack.eni_len(h.tables.eni_by_name("eni-0f00d00000000b001").unwrap().key),
        0,
        "untracked: no entry"
    );
    h.update(|cfg| {
        let g = cfg.security_groups.iter_mut().find(|g| g.group_id == open_sg).unwrap();
        g.ip_permissions.clear();
    });
    assert_eq!(c.client_sends(&mut h, Flags::PSH_ACK), "reject:sg-ingress", "the open connection stops at once");
}

#[test]
fn row_16_a_nacl_deny_stops_an_open_connection() {
    let mut h = Harness::from_file(tt::CONFIG);
    let c = Conn { client: tt::client(), server: tt::web(), sport: 40301, dport: 443 };
    c.open(&mut h);
    assert_eq!(c.client_sends(&mut h, Flags::PSH_ACK), "forward:web");
    h.update(|cfg| {
        let public = cfg.network_acls.iter_mut().find(|n| n.network_acl_id.ends_with("c001")).unwrap();
        public.entries.push(NetworkAclEntry {
            rule_number: 40,
            protocol: "-1".into(),
            rule_action: "deny".into(),
            egress: false,
            cidr_block: Some("198.19.0.10/32".into()),
            ..Default::default()
        });
    });
    assert_eq!(c.client_sends(&mut h, Flags::PSH_ACK), "reject:nacl-ingress", "the open connection stops");
}
