//! The parser: one pass, bounds-checked reads only, every malformed input an `Err`.

use super::*;
use crate::addr::{Family, Ip};

/// Most extension headers a real IPv6 stack puts in one packet is far below this; a
/// longer chain is an attack on parsers, not traffic.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// Parses one Ethernet frame.
#[inline]
pub fn parse(f: &[u8]) -> Result<Packet, Malformed> {
    let (Some(dst_mac), Some(src_mac), Some(mut ethertype)) = (mac_at(f, 0), mac_at(f, 6), be16(f, 12)) else {
        return Err(Malformed::Ethernet);
    };
    let mut off = 14usize;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        tags += 1;
        if tags > 2 {
            return Err(Malformed::Vlan);
        }
        ethertype = be16(f, off + 2).ok_or(Malformed::Vlan)?;
        off += 4;
    }
    let l3 = &f[off..];
    let kind = match ethertype {
        ETHERTYPE_ARP => Kind::Arp(parse_arp(l3)?),
        ETHERTYPE_IPV4 => Kind::Ip(parse_ipv4(l3, off)?),
        ETHERTYPE_IPV6 => Kind::Ip(parse_ipv6(l3, off)?),
        other => Kind::OtherEthertype(other),
    };
    Ok(Packet { dst_mac, src_mac, l3_offset: off as u16, kind })
}

fn parse_arp(b: &[u8]) -> Result<Arp, Malformed> {
    if b.len() < 28 || be16(b, 0) != Some(1) || be16(b, 2) != Some(ETHERTYPE_IPV4) || b[4] != 6 || b[5] != 4 {
        return Err(Malformed::Arp);
    }
    let get = || -> Option<Arp> {
        Some(Arp {
            op: be16(b, 6)?,
            sender_mac: mac_at(b, 8)?,
            sender_ip: be32(b, 14)?,
            target_mac: mac_at(b, 18)?,
            target_ip: be32(b, 24)?,
        })
    };
    get().ok_or(Malformed::Arp)
}

#[inline]
fn parse_ipv4(b: &[u8], base: usize) -> Result<IpPacket, Malformed> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return Err(Malformed::Ipv4Header);
    }
    let ihl = ((b[0] & 0x0f) as usize) * 4;
    if ihl < 20 || ihl > b.len() {
        return Err(Malformed::Ipv4Ihl);
    }
    let total = be16(b, 2).ok_or(Malformed::Ipv4Header)? as usize;
    if total < ihl || total > b.len() {
        return Err(Malformed::Ipv4TotalLength);
    }
    let b = &b[..total]; // drop Ethernet padding
    let flags_frag = be16(b, 6).ok_or(Malformed::Ipv4Header)?;
    let offset = flags_frag & 0x1fff;
    let more = flags_frag & 0x2000 != 0;
    let proto = b[9];
    let src = be32(b, 12).ok_or(Malformed::Ipv4Header)? as u128;
    let dst = be32(b, 16).ok_or(Malformed::Ipv4Header)? as u128;
    let frag = (more || offset != 0).then(|| Fragment { id: be16(b, 4).unwrap_or(0) as u32, offset, more });
    let payload = &b[ihl..];
    let l4 = l4_after_fragment_checks(Family::V4, proto, payload, base + ihl, frag)?;
    Ok(IpPacket { family: Family::V4, src, dst, proto, hop_limit: b[8], ip_len: total as u16, frag, l4 })
}

#[inline]
fn parse_ipv6(b: &[u8], base: usize) -> Result<IpPacket, Malformed> {
    if b.len() < 40 || b[0] >> 4 != 6 {
        return Err(Malformed::Ipv6Header);
    }
    let plen = be16(b, 4).ok_or(Malformed::Ipv6Header)? as usize;
    let mut nh = b[6];
    if 40 + plen > b.len() || (plen == 0 && nh != 59) {
        return Err(Malformed::Ipv6PayloadLength);
    }
    let b = &b[..40 + plen];
    let src = be128(b, 8).ok_or(Malformed::Ipv6Header)?;
    let dst = be128(b, 24).ok_or(Malformed::Ipv6Header)?;
    let mut pos = 40usize;
    let mut frag = None;
    let mut count = 0usize;
    loop {
        let len = match nh {
            // Hop-by-hop options are only allowed right after the fixed header.
            0 if count != 0 => return Err(Malformed::Ipv6Extension),
            0 | 43 | 60 | 135 | 139 | 140 => (*b.get(pos + 1).ok_or(Malformed::Ipv6Extension)? as usize + 1) * 8,
            51 => (*b.get(pos + 1).ok_or(Malformed::Ipv6Extension)? as usize + 2) * 4,
            44 => {
                if frag.is_some() {
                    return Err(Malformed::Ipv6Extension);
                }
                let offfl = be16(b, pos + 2).ok_or(Malformed::Ipv6Extension)?;
                let id = be32(b, pos + 4).ok_or(Malformed::Ipv6Extension)?;
                let (offset, more) = (offfl >> 3, offfl & 1 == 1);
                // An atomic fragment (offset 0, no more) is a whole datagram (RFC 6946).
                frag = (offset != 0 || more).then_some(Fragment { id, offset, more });
                8
            }
            _ => break,
        };
        if pos + len > b.len() {
            return Err(Malformed::Ipv6Extension);
        }
        nh = b[pos];
        pos += len;
        count += 1;
        if count > MAX_IPV6_EXTENSIONS {
            return Err(Malformed::Ipv6ExtensionChain);
        }
        if frag.is_some_and(|f| f.offset != 0) {
            break; // the rest belongs to the fragmentable part we cannot see into
        }
    }
    let l4 = l4_after_fragment_checks(Family::V6, nh, &b[pos..], base + pos, frag)?;
    Ok(IpPacket { family: Family::V6, src, dst, proto: nh, hop_limit: b[7], ip_len: (40 + plen) as u16, frag, l4 })
}

/// Rejects impossible fragments, then parses the L4 header of anything that has one.
#[inline]
fn l4_after_fragment_checks(
    family: Family,
    proto: u8,
    payload: &[u8],
    at: usize,
    frag: Option<Fragment>,
) -> Result<L4, Malformed> {
    if let Some(fr) = frag {
        if fr.offset as usize * 8 + payload.len() > 65535 {
            return Err(Malformed::FragmentOffset);
        }
        if fr.offset != 0 {
            // RFC 1858: a fragment at offset 8 bytes can only be rewriting the TCP flags.
            if proto == PROTO_TCP && fr.offset == 1 {
                return Err(Malformed::FragmentOffset);
            }
            return Ok(L4::NotFirstFragment);
        }
    }
    parse_l4(family, proto, payload, at, frag.is_some())
}

#[inline]
fn parse_l4(family: Family, proto: u8, b: &[u8], at: usize, fragmented: bool) -> Result<L4, Malformed> {
    // A first fragment too short for its L4 header is a tiny-fragment attack (RFC 1858).
    let short = |e| {
        if fragmented {
            Malformed::TinyFragment
        } else {
            e
        }
    };
    match (proto, family) {
        (PROTO_TCP, _) => {
            if b.len() < 20 {
                return Err(short(Malformed::Tcp));
            }
            let doff = (b[12] >> 4) as usize * 4;
            if doff < 20 {
                return Err(Malformed::TcpDataOffset);
            }
            if doff > b.len() {
                return Err(short(Malformed::TcpDataOffset));
            }
            Ok(L4::Tcp { sport: be16(b, 0).unwrap_or(0), dport: be16(b, 2).unwrap_or(0), flags: b[13] })
        }
        (PROTO_UDP, _) => {
            if b.len() < 8 {
                return Err(short(Malformed::Udp));
            }
            let ulen = be16(b, 4).unwrap_or(0) as usize;
            // In a fragment the length covers the whole datagram, which we cannot see.
            if ulen < 8 || (!fragmented && ulen > b.len()) {
                return Err(Malformed::UdpLength);
            }
            Ok(L4::Udp { sport: be16(b, 0).unwrap_or(0), dport: be16(b, 2).unwrap_or(0) })
        }
        (PROTO_ICMP, Family::V4) | (PROTO_ICMPV6, Family::V6) => {
            if b.len() < 8 {
                return Err(short(Malformed::Icmp));
            }
            Ok(L4::Icmp(parse_icmp(family, b, at)))
        }
        _ => Ok(L4::Other),
    }
}

/// `b` holds at least the 8-byte ICMP header, which starts at frame offset `at`.
fn parse_icmp(family: Family, b: &[u8], at: usize) -> Icmp {
    let (ty, code) = (b[0], b[1]);
    let id = be16(b, 4).unwrap_or(0);
    let query = match family {
        Family::V4 => icmp4_query(ty),
        Family::V6 => icmp6_query(ty),
    };
    let msg = if let Some((request_type, is_reply)) = query {
        IcmpMsg::Query { id, request_type, is_reply }
    } else if is_icmp_error(family, ty) {
        IcmpMsg::Error { quote: (at + 8) as u16 }
    } else if family == Family::V6 && ty == 135 && b.len() >= 24 {
        IcmpMsg::NeighborSolicit { at: at as u16 }
    } else if family == Family::V6 && (133..=137).contains(&ty) {
        IcmpMsg::NeighborDiscovery
    } else {
        IcmpMsg::Other
    };
    Icmp { ty, code, msg }
}

/// The target and source link-layer address of the neighbour solicitation at frame
/// offset `at`; `None` if its options are malformed (RFC 4861 7.1.1: discard).
pub fn neighbor_solicitation(frame: &[u8], at: u16) -> Option<(u128, Option<Mac>)> {
    let b = frame.get(at as usize..)?;
    let target = be128(b, 8)?;
    let mut source_ll = None;
    let mut pos = 24;
    while pos + 2 <= b.len() {
        let (ty, len) = (b[pos], b[pos + 1] as usize * 8);
        if len == 0 || pos + len > b.len() {
            return None;
        }
        if ty == 1 && len >= 8 {
            source_ll = mac_at(b, pos + 2);
        }
        pos += len;
    }
    Some((target, source_ll))
}

/// The flow an ICMP error (of `family`, quote at frame offset `quote`) is about;
/// `None` when the quote is too short to tell.
pub fn quoted_flow(frame: &[u8], family: Family, quote: u16) -> Option<Embedded> {
    let q = frame.get(quote as usize..)?;
    let (src, dst, proto, l4) = match family {
        Family::V4 => {
            if q.len() < 20 || q[0] >> 4 != 4 {
                return None;
            }
            let ihl = (q[0] & 0x0f) as usize * 4;
            if ihl < 20 {
                return None;
            }
            let not_first = be16(q, 6)? & 0x1fff != 0;
            let l4 = if not_first { &[][..] } else { q.get(ihl..)? };
            (Ip::v4(be32(q, 12)?), Ip::v4(be32(q, 16)?), q[9], l4)
        }
        Family::V6 => {
            if q.len() < 40 || q[0] >> 4 != 6 {
                return None;
            }
            // Only the common case: the upper layer right after the fixed header.
            (Ip::v6(be128(q, 8)?), Ip::v6(be128(q, 24)?), q[6], q.get(40..)?)
        }
    };
    let l4 = match proto {
        PROTO_TCP | PROTO_UDP if l4.len() >= 4 => EmbeddedL4::Ports { sport: be16(l4, 0)?, dport: be16(l4, 2)? },
        PROTO_ICMP | PROTO_ICMPV6 if l4.len() >= 8 => {
            let query = if family == Family::V4 { icmp4_query(l4[0]) } else { icmp6_query(l4[0]) };
            match query {
                Some((request_type, is_reply)) => EmbeddedL4::Query { id: be16(l4, 4)?, request_type, is_reply },
                None => EmbeddedL4::None,
            }
        }
        PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_ICMPV6 => return None,
        _ => EmbeddedL4::None,
    };
    Some(Embedded { src, dst, proto, l4 })
}
