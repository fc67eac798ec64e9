//! Frame parsing for the oracle, by hand from the byte layouts (RFC 791, 8200, 826,
//! 793, 768, 792, 4443, 4861). Only std: nothing is shared with the pipeline's parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a frame is, after the Ethernet header and up to two VLAN tags.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// Truncated or inconsistent headers; the string says which.
    Malformed(&'static str),
    Arp(Arp),
    Ip(Pkt),
    /// An ethertype that is neither IPv4, IPv6 nor ARP.
    NotIp(u16),
}

#[derive(Clone, Debug)]
pub struct Arp {
    /// hardware type 1, protocol 0x0800, lengths 6 and 4.
    pub ethernet_ipv4: bool,
    pub op: u16,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented (IPv4 offset 0 without MF, or an IPv6 atomic fragment).
    Whole,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First(u32),
    /// Offset > 0: no L4 header.
    Later(u32),
}

#[derive(Clone, Debug)]
pub enum L4 {
    /// A later fragment: nothing past the IP header(s) is known.
    Unknown,
    Tcp {
        sport: u16,
        dport: u16,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP (protocol 1 in IPv4) or ICMPv6 (58 in IPv6): the 8-byte header and
    /// what follows it.
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        body: Vec<u8>,
    },
    /// Any other protocol: addresses and protocol number only.
    Other,
}

#[derive(Clone, Debug)]
pub struct Pkt {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol, or the upper-layer IPv6 next header (after extension headers).
    pub proto: u8,
    pub hop_limit: u8,
    pub frag: Frag,
    pub l4: L4,
}

impl Pkt {
    pub fn dport(&self) -> Option<u16> {
        match self.l4 {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => Some(dport),
            _ => None,
        }
    }
    pub fn sport(&self) -> Option<u16> {
        match self.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => Some(sport),
            _ => None,
        }
    }
    pub fn icmp(&self) -> Option<(u8, u8)> {
        match self.l4 {
            L4::Icmp { ty, code, .. } => Some((ty, code)),
            _ => None,
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn v4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

pub fn v6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

/// Source MAC of a frame at least 12 bytes long.
pub fn src_mac(f: &[u8]) -> Option<[u8; 6]> {
    if f.len() < 12 {
        return None;
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&f[6..12]);
    Some(m)
}

pub fn parse(f: &[u8]) -> Parsed {
    if f.len() < 14 {
        return Parsed::Malformed("ethernet header truncated");
    }
    let mut ethertype = be16(&f[12..14]);
    let mut off = 14;
    // Up to two 802.1Q / 802.1ad tags (7.1 "VLAN tags").
    let mut tags = 0;
    while (ethertype == 0x8100 || ethertype == 0x88a8) && tags < 2 {
        if f.len() < off + 4 {
            return Parsed::Malformed("VLAN tag truncated");
        }
        ethertype = be16(&f[off + 2..off + 4]);
        off += 4;
        tags += 1;
    }
    let p = &f[off..];
    match ethertype {
        0x0806 => parse_arp(p),
        0x0800 => parse_ipv4(p),
        0x86dd => parse_ipv6(p),
        other => Parsed::NotIp(other),
    }
}

fn parse_arp(p: &[u8]) -> Parsed {
    if p.len() < 28 {
        return Parsed::Malformed("ARP truncated");
    }
    Parsed::Arp(Arp {
        ethernet_ipv4: be16(&p[0..2]) == 1 && be16(&p[2..4]) == 0x0800 && p[4] == 6 && p[5] == 4,
        op: be16(&p[6..8]),
        sender_ip: v4(&p[14..18]),
        target_ip: v4(&p[24..28]),
    })
}

fn parse_ipv4(p: &[u8]) -> Parsed {
    if p.len() < 20 {
        return Parsed::Malformed("IPv4 header truncated");
    }
    if p[0] >> 4 != 4 {
        return Parsed::Malformed("IPv4 version");
    }
    let ihl = (p[0] & 0xf) as usize * 4;
    if ihl < 20 {
        return Parsed::Malformed("IPv4 IHL < 5");
    }
    if ihl > p.len() {
        return Parsed::Malformed("IPv4 IHL beyond frame");
    }
    let total = be16(&p[2..4]) as usize;
    if total < ihl {
        return Parsed::Malformed("IPv4 total length < IHL");
    }
    if total > p.len() {
        return Parsed::Malformed("IPv4 total length beyond frame");
    }
    let id = be16(&p[4..6]) as u32;
    let fo = be16(&p[6..8]);
    let more = fo & 0x2000 != 0;
    let offset = fo & 0x1fff;
    let proto = p[9];
    let src = IpAddr::V4(v4(&p[12..16]));
    let dst = IpAddr::V4(v4(&p[16..20]));
    let payload = &p[ihl..total];
    let frag = if offset > 0 {
        Frag::Later(id)
    } else if more {
        Frag::First(id)
    } else {
        Frag::Whole
    };
    finish(false, src, dst, proto, p[8], frag, offset, payload)
}

fn parse_ipv6(p: &[u8]) -> Parsed {
    if p.len() < 40 {
        return Parsed::Malformed("IPv6 header truncated");
    }
    if p[0] >> 4 != 6 {
        return Parsed::Malformed("IPv6 version");
    }
    let plen = be16(&p[4..6]) as usize;
    if 40 + plen > p.len() {
        return Parsed::Malformed("IPv6 payload length beyond frame");
    }
    let src = IpAddr::V6(v6(&p[8..24]));
    let dst = IpAddr::V6(v6(&p[24..40]));
    let hop = p[7];
    let mut nh = p[6];
    let mut body = &p[40..40 + plen];
    let mut frag = Frag::Whole;
    let mut offset = 0u16;
    // Extension headers: hop-by-hop, routing, destination options, fragment.
    loop {
        match nh {
            0 | 43 | 60 => {
                if body.len() < 2 {
                    return Parsed::Malformed("IPv6 extension header truncated");
                }
                let len = (body[1] as usize + 1) * 8;
                if body.len() < len {
                    return Parsed::Malformed("IPv6 extension header truncated");
                }
                nh = body[0];
                body = &body[len..];
            }
            44 => {
                if body.len() < 8 {
                    return Parsed::Malformed("IPv6 fragment header truncated");
                }
                let fo = be16(&body[2..4]);
                offset = fo >> 3;
                let more = fo & 1 != 0;
                let id = be32(&body[4..8]);
                nh = body[0];
                body = &body[8..];
                frag = if offset > 0 {
                    Frag::Later(id)
                } else if more {
                    Frag::First(id)
                } else {
                    // Atomic fragment: a whole datagram (7.1).
                    Frag::Whole
                };
                if offset > 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    finish(true, src, dst, nh, hop, frag, offset, body)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    is_v6: bool,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    hop_limit: u8,
    frag: Frag,
    offset: u16,
    l4: &[u8],
) -> Parsed {
    let l4 = if let Frag::Later(_) = frag {
        // RFC 1858: a TCP fragment at offset 8 bytes could rewrite the flags. 7.1
        // says "of a TCP datagram" without naming a family: read as both.
        if proto == 6 && offset == 1 {
            return Parsed::Malformed(if is_v6 {
                "TCP fragment at offset 8 (IPv6)"
            } else {
                "TCP fragment at offset 8"
            });
        }
        L4::Unknown
    } else {
        match parse_l4(is_v6, proto, l4) {
            Ok(x) => x,
            Err(e) => return Parsed::Malformed(e),
        }
    };
    Parsed::Ip(Pkt { v6: is_v6, src, dst, proto, hop_limit, frag, l4 })
}

fn parse_l4(is_v6: bool, proto: u8, b: &[u8]) -> Result<L4, &'static str> {
    match proto {
        6 => {
            if b.len() < 20 {
                return Err("TCP header truncated");
            }
            let doff = (b[12] >> 4) as usize;
            if doff < 5 {
                return Err("TCP data offset < 5");
            }
            if doff * 4 > b.len() {
                return Err("TCP data offset beyond segment");
            }
            let fl = b[13];
            Ok(L4::Tcp {
                sport: be16(&b[0..2]),
                dport: be16(&b[2..4]),
                fin: fl & 0x01 != 0,
                syn: fl & 0x02 != 0,
                rst: fl & 0x04 != 0,
                ack: fl & 0x10 != 0,
            })
        }
        17 => {
            if b.len() < 8 {
                return Err("UDP header truncated");
            }
            Ok(L4::Udp { sport: be16(&b[0..2]), dport: be16(&b[2..4]) })
        }
        1 if !is_v6 => icmp(b),
        58 if is_v6 => icmp(b),
        _ => Ok(L4::Other),
    }
}

fn icmp(b: &[u8]) -> Result<L4, &'static str> {
    if b.len() < 8 {
        return Err("ICMP header truncated");
    }
    Ok(L4::Icmp { ty: b[0], code: b[1], rest: [b[4], b[5], b[6], b[7]], body: b[8..].to_vec() })
}

/// The flow an ICMP error quotes: the embedded IP header and what follows of its
/// payload (RFC 792 asks for 8 bytes; the caller needs only what identifies the
/// flow: ports, or the ICMP identifier). `None` if the IP header cannot be read.
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub l4: Vec<u8>,
}

pub fn quoted(is_v6: bool, body: &[u8]) -> Option<Quoted> {
    if !is_v6 {
        if body.len() < 20 || body[0] >> 4 != 4 {
            return None;
        }
        let ihl = (body[0] & 0xf) as usize * 4;
        if ihl < 20 || body.len() < ihl {
            return None;
        }
        Some(Quoted {
            src: IpAddr::V4(v4(&body[12..16])),
            dst: IpAddr::V4(v4(&body[16..20])),
            proto: body[9],
            l4: body[ihl..].to_vec(),
        })
    } else {
        if body.len() < 40 || body[0] >> 4 != 6 {
            return None;
        }
        Some(Quoted {
            src: IpAddr::V6(v6(&body[8..24])),
            dst: IpAddr::V6(v6(&body[24..40])),
            proto: body[6],
            l4: body[40..].to_vec(),
        })
    }
}
