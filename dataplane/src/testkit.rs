//! Frames for tests, captures and generators, built with `etherparse` so they do not
//! share code with the parser they exercise. Behind the `testkit` feature.

use std::net::IpAddr;

use etherparse::{IpNumber, PacketBuilder, TcpHeader};

use crate::addr::Mac;

/// An endpoint as seen on the wire: the MAC the frame carries and the IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    pub mac: Mac,
    pub ip: IpAddr,
}

impl Host {
    pub fn new(mac: &str, ip: &str) -> Host {
        Host { mac: Mac::parse(mac).expect("valid MAC"), ip: ip.parse().expect("valid IP") }
    }
}

/// TCP flags to set on a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

impl Flags {
    pub const SYN: Flags = Flags { syn: true, ack: false, fin: false, rst: false, psh: false };
    pub const SYN_ACK: Flags = Flags { syn: true, ack: true, fin: false, rst: false, psh: false };
    pub const ACK: Flags = Flags { syn: false, ack: true, fin: false, rst: false, psh: false };
    pub const PSH_ACK: Flags = Flags { syn: false, ack: true, fin: false, rst: false, psh: true };
    pub const FIN_ACK: Flags = Flags { syn: false, ack: true, fin: true, rst: false, psh: false };
    pub const RST: Flags = Flags { syn: false, ack: false, fin: false, rst: true, psh: false };
    pub const RST_ACK: Flags = Flags { syn: false, ack: true, fin: false, rst: true, psh: false };

    pub fn bits(self) -> u8 {
        (self.fin as u8) | (self.syn as u8) << 1 | (self.rst as u8) << 2 | (self.psh as u8) << 3 | (self.ack as u8) << 4
    }
}

/// Ethernet + IP header start for `from` -> `to`; `l2_dst` is where the frame goes
/// (the router's MAC, for frames entering the appliance).
fn ip_builder(from: &Host, to_ip: IpAddr, l2_dst: Mac) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(from.mac.0, l2_dst.0);
    match (from.ip, to_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn tcp(
    from: &Host,
    to_ip: IpAddr,
    l2_dst: Mac,
    sport: u16,
    dport: u16,
    flags: Flags,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = TcpHeader::new(sport, dport, seq, 64240);
    h.syn = flags.syn;
    h.fin = flags.fin;
    h.rst = flags.rst;
    h.psh = flags.psh;
    if flags.ack {
        h.ack = true;
        h.acknowledgment_number = ack;
    }
    let b = ip_builder(from, to_ip, l2_dst).tcp_header(h);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("tcp frame");
    out
}

pub fn udp(from: &Host, to_ip: IpAddr, l2_dst: Mac, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = ip_builder(from, to_ip, l2_dst).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("udp frame");
    out
}

/// Any ICMP (v4 or v6 by address family) message: type, code, the 4 "rest of
/// header" bytes, and a payload.
pub fn icmp(from: &Host, to_ip: IpAddr, l2_dst: Mac, ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let b = ip_builder(from, to_ip, l2_dst);
    let mut out = Vec::new();
    if from.ip.is_ipv4() {
        let b = b.icmpv4_raw(ty, code, rest);
        b.write(&mut out, payload).expect("icmp frame");
    } else {
        let b = b.icmpv6_raw(ty, code, rest);
        b.write(&mut out, payload).expect("icmpv6 frame");
    }
    out
}

/// Echo request (or reply) with identifier `id`.
pub fn echo(from: &Host, to_ip: IpAddr, l2_dst: Mac, id: u16, seq: u16, reply: bool) -> Vec<u8> {
    let ty = match (from.ip.is_ipv4(), reply) {
        (true, false) => 8,
        (true, true) => 0,
        (false, false) => 128,
        (false, true) => 129,
    };
    let mut rest = [0u8; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[2..].copy_from_slice(&seq.to_be_bytes());
    icmp(from, to_ip, l2_dst, ty, 0, rest, b"vpcgate-ping")
}

/// An ICMP error (destination unreachable, time exceeded, packet too big) sent by
/// `from` about `quoted` (a whole frame; its IP header and first bytes are quoted).
pub fn icmp_error(from: &Host, to_ip: IpAddr, l2_dst: Mac, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let ip = &quoted[14..];
    let keep = if from.ip.is_ipv4() { (ip[0] as usize & 0xf) * 4 + 8 } else { 48 };
    icmp(from, to_ip, l2_dst, ty, code, [0; 4], &ip[..keep.min(ip.len())])
}

/// Some other IP protocol (GRE = 47, ESP = 50, ...) with a payload.
pub fn other(from: &Host, to_ip: IpAddr, l2_dst: Mac, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match (from.ip, to_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = etherparse::Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), s.octets(), d.octets())
                .expect("ipv4 header");
            ip.header_checksum = ip.calc_header_checksum();
            out.extend_from_slice(&l2(from.mac, l2_dst, 0x0800));
            ip.write(&mut out).expect("ipv4 header");
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = etherparse::Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: payload.len() as u16,
                next_header: IpNumber(proto),
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            };
            out.extend_from_slice(&l2(from.mac, l2_dst, 0x86dd));
            ip.write(&mut out).expect("ipv6 header");
        }
        _ => panic!("mixed address families"),
    }
    out.extend_from_slice(payload);
    out
}

fn l2(src: Mac, dst: Mac, ethertype: u16) -> [u8; 14] {
    let mut h = [0u8; 14];
    h[..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    h
}

/// ARP request from `from` for `target`.
pub fn arp_request(from: &Host, target: std::net::Ipv4Addr) -> Vec<u8> {
    let IpAddr::V4(sip) = from.ip else { panic!("ARP needs IPv4") };
    let mut f = l2(from.mac, Mac::BROADCAST, 0x0806).to_vec();
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&from.mac.0);
    f.extend_from_slice(&sip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Neighbour solicitation from `from` (source address `from.ip`) for `target`.
pub fn neighbor_solicit(from: &Host, target: std::net::Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let solicited: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]];
    let IpAddr::V6(src) = from.ip else { panic!("ND needs IPv6") };
    let mut msg = Vec::new();
    msg.extend_from_slice(&t);
    msg.extend_from_slice(&[1, 1]);
    msg.extend_from_slice(&from.mac.0);
    let dst_mac = Mac([0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    let b =
        PacketBuilder::ethernet2(from.mac.0, dst_mac.0).ipv6(src.octets(), solicited, 255).icmpv6_raw(135, 0, [0; 4]);
    let mut out = Vec::new();
    b.write(&mut out, &msg).expect("ns frame");
    out
}

/// Splits an IPv4 frame's payload into fragments of at most `chunk` bytes (a multiple
/// of 8), returning whole frames. IPv6 frames get a fragment header.
pub fn fragment(frame: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    assert!(chunk.is_multiple_of(8) && chunk > 0);
    let eth = &frame[..14];
    let ip = &frame[14..];
    let mut out = Vec::new();
    if ip[0] >> 4 == 4 {
        let ihl = (ip[0] as usize & 0xf) * 4;
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let payload = &ip[ihl..total];
        for (i, part) in payload.chunks(chunk).enumerate() {
            let offset = (i * chunk / 8) as u16;
            let more = (i + 1) * chunk < payload.len();
            let mut h = ip[..ihl].to_vec();
            h[2..4].copy_from_slice(&((ihl + part.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&(id as u16).to_be_bytes());
            h[6..8].copy_from_slice(&(offset | if more { 0x2000 } else { 0 }).to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            let mut f = eth.to_vec();
            f.extend_from_slice(&h);
            f.extend_from_slice(part);
            out.push(f);
        }
    } else {
        let next = ip[6];
        let payload = &ip[40..];
        for (i, part) in payload.chunks(chunk).enumerate() {
            let offset = (i * chunk / 8) as u16;
            let more = (i + 1) * chunk < payload.len();
            let mut h = ip[..40].to_vec();
            h[4..6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
            h[6] = 44;
            let mut f = eth.to_vec();
            f.extend_from_slice(&h);
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&((offset << 3) | more as u16).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(part);
            out.push(f);
        }
    }
    out
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Puts an 802.1Q tag with `vid` into a frame.
pub fn vlan_tag(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}
