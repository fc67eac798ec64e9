//! Parser tests: well-formed frames of every kind, and malformed ones cut at every
//! header boundary — each must be a drop reason, never a panic.

use super::*;
use crate::testkit::{self, Flags, Host};

fn a() -> Host {
    Host::new("02:00:00:00:00:01", "198.18.1.10")
}
fn a6() -> Host {
    Host::new("02:00:00:00:00:01", "2600:1f18::10")
}
fn r() -> Mac {
    Mac::parse("02:76:70:63:67:01").unwrap()
}
fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn l4(frame: &[u8]) -> L4 {
    match parse(frame).unwrap().kind {
        Kind::Ip(p) => p.l4,
        k => panic!("not IP: {k:?}"),
    }
}

#[test]
fn parses_tcp_udp_icmp_both_families() {
    let t = testkit::tcp(&a(), ip("198.19.0.1"), r(), 1000, 80, Flags::SYN, 1, 0, b"");
    assert_eq!(l4(&t), L4::Tcp { sport: 1000, dport: 80, flags: TCP_SYN });
    let u = testkit::udp(&a6(), ip("2600:1f18::20"), r(), 53, 5353, b"q");
    assert_eq!(l4(&u), L4::Udp { sport: 53, dport: 5353 });
    let e = testkit::echo(&a(), ip("198.19.0.1"), r(), 7, 1, true);
    assert_eq!(
        l4(&e),
        L4::Icmp(Icmp { ty: 0, code: 0, msg: IcmpMsg::Query { id: 7, request_type: 8, is_reply: true } })
    );
    let e6 = testkit::echo(&a6(), ip("2600:1f18::20"), r(), 9, 1, false);
    assert_eq!(
        l4(&e6),
        L4::Icmp(Icmp { ty: 128, code: 0, msg: IcmpMsg::Query { id: 9, request_type: 128, is_reply: false } })
    );
    let g = testkit::other(&a(), ip("198.19.0.1"), r(), 47, b"gre!");
    assert_eq!(l4(&g), L4::Other);
    let p = parse(&g).unwrap();
    let Kind::Ip(ipk) = p.kind else { panic!() };
    assert_eq!((ipk.proto, ipk.ip_len), (47, 24));
}

#[test]
fn icmp_errors_carry_the_quoted_flow() {
    let orig = testkit::udp(&a(), ip("198.19.0.1"), r(), 4444, 53, b"query");
    let err = testkit::icmp_error(&Host::new("02:00:00:00:00:09", "198.19.0.1"), ip("198.18.1.10"), r(), 3, 3, &orig);
    let L4::Icmp(Icmp { ty: 3, code: 3, msg: IcmpMsg::Error { quote } }) = l4(&err) else { panic!("{:?}", l4(&err)) };
    let e = quoted_flow(&err, Family::V4, quote).unwrap();
    assert_eq!((e.src, e.dst, e.proto), (Ip::from(ip("198.18.1.10")), Ip::from(ip("198.19.0.1")), 17));
    assert_eq!(e.l4, EmbeddedL4::Ports { sport: 4444, dport: 53 });
    // A quote too short to hold the ports is an error we cannot attribute.
    let short = testkit::icmp(&a(), ip("198.19.0.1"), r(), 11, 0, [0; 4], &orig[14..30]);
    let L4::Icmp(Icmp { ty: 11, msg: IcmpMsg::Error { quote }, .. }) = l4(&short) else { panic!() };
    assert_eq!(quoted_flow(&short, Family::V4, quote), None);
}

#[test]
fn arp_and_neighbor_solicitation() {
    let req = testkit::arp_request(&a(), "198.18.1.1".parse().unwrap());
    let Kind::Arp(arp) = parse(&req).unwrap().kind else { panic!() };
    assert_eq!((arp.op, arp.target_ip), (ARP_REQUEST, 0xc612_0101));
    let ns = testkit::neighbor_solicit(&Host::new("02:00:00:00:00:01", "fe80::1:2"), "2600:1f18::1".parse().unwrap());
    let L4::Icmp(Icmp { msg: IcmpMsg::NeighborSolicit { at }, .. }) = l4(&ns) else { panic!() };
    let (target, source_ll) = neighbor_solicitation(&ns, at).unwrap();
    assert_eq!(target, u128::from("2600:1f18::1".parse::<std::net::Ipv6Addr>().unwrap()));
    assert_eq!(source_ll, Mac::parse("02:00:00:00:00:01"));
    // Options with length zero make the solicitation invalid (RFC 4861 7.1.1).
    let mut bad = ns.clone();
    let n = bad.len();
    bad[n - 7] = 0;
    assert_eq!(neighbor_solicitation(&bad, at), None);
}

#[test]
fn vlan_tags_are_skipped_and_three_are_refused() {
    let t = testkit::tcp(&a(), ip("198.19.0.1"), r(), 1, 2, Flags::ACK, 1, 1, b"");
    let one = testkit::vlan_tag(&t, 10);
    assert_eq!(parse(&one).unwrap().l3_offset, 18);
    let two = testkit::vlan_tag(&one, 20);
    assert_eq!(parse(&two).unwrap().l3_offset, 22);
    assert_eq!(parse(&testkit::vlan_tag(&two, 30)), Err(Malformed::Vlan));
}

#[test]
fn fragments_first_and_later() {
    let big = testkit::udp(&a(), ip("198.19.0.1"), r(), 1, 2, &[7u8; 100]);
    let frags = testkit::fragment(&big, 48, 0x1234);
    assert_eq!(frags.len(), 3);
    let Kind::Ip(first) = parse(&frags[0]).unwrap().kind else { panic!() };
    assert_eq!(first.frag, Some(Fragment { id: 0x1234, offset: 0, more: true }));
    assert_eq!(first.l4, L4::Udp { sport: 1, dport: 2 });
    let Kind::Ip(last) = parse(&frags[2]).unwrap().kind else { panic!() };
    assert_eq!(last.frag, Some(Fragment { id: 0x1234, offset: 12, more: false }));
    assert_eq!(last.l4, L4::NotFirstFragment);
    // IPv6 fragment header.
    let big6 = testkit::udp(&a6(), ip("2600:1f18::20"), r(), 1, 2, &[7u8; 100]);
    let f6 = testkit::fragment(&big6, 64, 0xdead_beef);
    let Kind::Ip(p) = parse(&f6[1]).unwrap().kind else { panic!() };
    assert_eq!(
        (p.frag, p.l4, p.proto),
        (Some(Fragment { id: 0xdead_beef, offset: 8, more: false }), L4::NotFirstFragment, 17)
    );
}

#[test]
fn tiny_first_fragments_and_tcp_overlap_are_malformed() {
    let t = testkit::tcp(&a(), ip("198.19.0.1"), r(), 1, 2, Flags::SYN, 1, 0, &[0u8; 64]);
    let frags = testkit::fragment(&t, 8, 5);
    assert_eq!(parse(&frags[0]), Err(Malformed::TinyFragment), "8 bytes of a 20-byte TCP header");
    assert_eq!(parse(&frags[1]), Err(Malformed::FragmentOffset), "offset 1 can only rewrite TCP flags");
    assert!(parse(&frags[3]).is_ok());
}

/// Every prefix of a valid frame that ends inside a header is malformed, never a
/// panic, and never mistaken for a complete packet.
#[test]
fn every_truncation_is_a_drop_reason() {
    let frames = [
        testkit::tcp(&a(), ip("198.19.0.1"), r(), 1, 2, Flags::SYN, 1, 0, b"payload"),
        testkit::udp(&a6(), ip("2600:1f18::20"), r(), 1, 2, b"payload"),
        testkit::echo(&a(), ip("198.19.0.1"), r(), 7, 1, false),
        testkit::arp_request(&a(), "198.18.1.1".parse().unwrap()),
        testkit::vlan_tag(&testkit::udp(&a(), ip("198.19.0.1"), r(), 1, 2, b"x"), 5),
    ];
    for f in &frames {
        for cut in 0..f.len() {
            let got = parse(&f[..cut]);
            assert!(got.is_err(), "a frame cut at {cut} of {} parsed as {got:?}", f.len());
        }
        assert!(parse(f).is_ok());
    }
}

fn with_ipv4(f: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut g = f.to_vec();
    edit(&mut g[14..]);
    g
}

#[test]
fn bad_ipv4_headers() {
    let f = testkit::tcp(&a(), ip("198.19.0.1"), r(), 1, 2, Flags::SYN, 1, 0, b"");
    assert_eq!(parse(&with_ipv4(&f, |ip| ip[0] = 0x44)), Err(Malformed::Ipv4Ihl), "IHL 4");
    assert_eq!(parse(&with_ipv4(&f, |ip| ip[0] = 0x4f)), Err(Malformed::Ipv4Ihl), "IHL beyond the frame");
    assert_eq!(parse(&with_ipv4(&f, |ip| ip[0] = 0x65)), Err(Malformed::Ipv4Header), "version 6 in an IPv4 frame");
    assert_eq!(
        parse(&with_ipv4(&f, |ip| ip[2..4].copy_from_slice(&200u16.to_be_bytes()))),
        Err(Malformed::Ipv4TotalLength)
    );
    assert_eq!(
        parse(&with_ipv4(&f, |ip| ip[2..4].copy_from_slice(&10u16.to_be_bytes()))),
        Err(Malformed::Ipv4TotalLength)
    );
    // TCP data offset below 5 and beyond the segment.
    assert_eq!(parse(&with_ipv4(&f, |ip| ip[20 + 12] = 0x40)), Err(Malformed::TcpDataOffset));
    assert_eq!(parse(&with_ipv4(&f, |ip| ip[20 + 12] = 0xf0)), Err(Malformed::TcpDataOffset));
    // Ethernet padding after the datagram is fine.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 10]);
    assert!(parse(&padded).is_ok());
    // A fragment that would end beyond 65535 bytes.
    let u = testkit::udp(&a(), ip("198.19.0.1"), r(), 1, 2, &[0; 64]);
    assert_eq!(
        parse(&with_ipv4(&u, |ip| ip[6..8].copy_from_slice(&0x1fffu16.to_be_bytes()))),
        Err(Malformed::FragmentOffset)
    );
    // UDP length below 8, or beyond the datagram.
    assert_eq!(
        parse(&with_ipv4(&u, |ip| ip[20 + 4..20 + 6].copy_from_slice(&4u16.to_be_bytes()))),
        Err(Malformed::UdpLength)
    );
    assert_eq!(
        parse(&with_ipv4(&u, |ip| ip[20 + 4..20 + 6].copy_from_slice(&999u16.to_be_bytes()))),
        Err(Malformed::UdpLength)
    );
}

#[test]
fn bad_ipv6_headers_and_extension_chains() {
    let u = testkit::udp(&a6(), ip("2600:1f18::20"), r(), 1, 2, b"data");
    assert_eq!(
        parse(&with_ipv4(&u, |ip| ip[4..6].copy_from_slice(&500u16.to_be_bytes()))),
        Err(Malformed::Ipv6PayloadLength)
    );
    assert_eq!(
        parse(&with_ipv4(&u, |ip| ip[4..6].copy_from_slice(&0u16.to_be_bytes()))),
        Err(Malformed::Ipv6PayloadLength),
        "jumbogram"
    );
    // A chain of destination-options headers longer than any stack sends.
    let mut f = u[..14 + 40].to_vec();
    let n = 9;
    f[14 + 6] = 60;
    for i in 0..n {
        f.extend_from_slice(&[if i + 1 == n { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    f.extend_from_slice(&u[14 + 40..]);
    let plen = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(parse(&f), Err(Malformed::Ipv6ExtensionChain));
    // Eight are fine and the UDP header behind them is found.
    let mut g = u[..14 + 40].to_vec();
    g[14 + 6] = 60;
    for i in 0..8 {
        g.extend_from_slice(&[if i == 7 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    g.extend_from_slice(&u[14 + 40..]);
    let plen = (g.len() - 54) as u16;
    g[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(l4(&g), L4::Udp { sport: 1, dport: 2 });
    // Hop-by-hop anywhere but first is malformed.
    let mut h = g.clone();
    h[54 + 8] = 0;
    assert_eq!(parse(&h), Err(Malformed::Ipv6Extension));
    // An extension header whose length runs past the packet.
    let mut k = g.clone();
    k[54 + 1] = 200;
    assert_eq!(parse(&k), Err(Malformed::Ipv6Extension));
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..200_000 {
        let len = rng.gen_range(0..120);
        let mut f: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len > 14 && rng.gen_bool(0.7) {
            let et: u16 = [0x0800, 0x86dd, 0x0806, 0x8100][rng.gen_range(0..4)];
            f[12..14].copy_from_slice(&et.to_be_bytes());
            if len > 15 && et == 0x0800 {
                f[14] = 0x45;
            }
            if len > 15 && et == 0x86dd {
                f[14] = 0x60;
            }
        }
        let _ = parse(&f);
    }
}

/// What `plain_ipv4` accepts, `parse` accepts with the same fields; frames it turns
/// away are left to `parse`. Real frames, then the same frames with header bytes and
/// lengths mutated at random (truncated, fragmented, options, bad offsets).
#[test]
fn the_plain_ipv4_shortcut_agrees_with_the_parser() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let seeds = [
        testkit::tcp(&a(), ip("198.19.0.1"), r(), 1000, 80, Flags::SYN, 1, 0, b""),
        testkit::tcp(&a(), ip("198.19.0.1"), r(), 1000, 80, Flags::ACK, 1, 0, b"payload bytes"),
        testkit::udp(&a(), ip("198.19.0.1"), r(), 53, 5353, b"q"),
        testkit::udp(&a(), ip("198.19.0.1"), r(), 53, 5353, b""),
        testkit::echo(&a(), ip("198.19.0.1"), r(), 7, 1, false),
        testkit::udp(&a6(), ip("2600:1f18::20"), r(), 53, 5353, b"q"),
    ];
    let (mut accepted, mut turned_away) = (0, 0);
    for i in 0..400_000 {
        let mut f = seeds[i % seeds.len()].clone();
        // Ethernet padding, as short frames arrive.
        if rng.gen_bool(0.3) {
            f.resize(f.len().max(60) + rng.gen_range(0..8), 0);
        }
        for _ in 0..rng.gen_range(0..3) {
            let at = rng.gen_range(0..f.len().min(60));
            f[at] = if rng.gen_bool(0.5) { rng.gen() } else { f[at] ^ 1 << rng.gen_range(0..8) };
        }
        if rng.gen_bool(0.2) {
            f.truncate(rng.gen_range(0..=f.len()));
        }
        let Some(p) = plain_ipv4(&f) else {
            turned_away += 1;
            continue;
        };
        accepted += 1;
        let full = parse(&f).unwrap_or_else(|m| panic!("plain accepted what parse calls {m:?}: {f:02x?}"));
        assert_eq!(p.packet(), full, "{f:02x?}");
    }
    // Both sides of the shortcut were exercised.
    assert!(accepted > 50_000 && turned_away > 50_000, "{accepted} accepted, {turned_away} turned away");
}
