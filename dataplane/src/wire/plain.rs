//! The common case recognised without the full parse: an untagged IPv4 frame with
//! no options, not fragmented, carrying TCP or UDP. It exists so a frame of a known
//! flow can find its cached decision in a few dozen instructions, and a frame of an
//! unknown one is not parsed twice ([`PlainV4::packet`]).
//!
//! `None` means "not this shape", never "malformed": such frames go through
//! [`super::parse`], which decides. Whatever this accepts, `parse` accepts, and
//! `packet()` is what `parse` returns (checked against it in `wire/tests.rs`).

use super::{IpPacket, Kind, Packet, L4, PROTO_TCP, PROTO_UDP};
use crate::addr::{Family, Mac};

/// The fields of a plain IPv4 TCP/UDP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainV4 {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub ttl: u8,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// The IPv4 total length.
    pub ip_len: u16,
}

const ETH: usize = 14;

#[inline(always)]
fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

#[inline(always)]
fn be32(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

/// Recognises a plain IPv4 TCP/UDP frame (see the module comment).
#[inline]
pub fn plain_ipv4(frame: &[u8]) -> Option<PlainV4> {
    // Ethernet + 20-byte IPv4 + the 8 bytes of L4 header both protocols start with.
    let f = frame.get(..ETH + 28)?;
    // Ethertype IPv4 and version 4 with IHL 5 (no options).
    if be16(f, 12) != super::ETHERTYPE_IPV4 || f[ETH] != 0x45 {
        return None;
    }
    let ip_len = be16(f, ETH + 2);
    let total = ip_len as usize;
    // Not a fragment: MF clear and offset 0 (DF may be set).
    if total > frame.len() - ETH || be16(f, ETH + 6) & 0x3fff != 0 {
        return None;
    }
    let proto = f[ETH + 9];
    let l4 = ETH + 20;
    let tcp_flags = match proto {
        PROTO_TCP => {
            let doff = (frame.get(l4 + 12)? >> 4) as usize * 4;
            if total < 40 || doff < 20 || doff > total - 20 {
                return None;
            }
            frame[l4 + 13]
        }
        PROTO_UDP => {
            let ulen = be16(f, l4 + 4) as usize;
            if total < 28 || ulen < 8 || ulen > total - 20 {
                return None;
            }
            0
        }
        _ => return None,
    };
    let mac = |at: usize| Mac([f[at], f[at + 1], f[at + 2], f[at + 3], f[at + 4], f[at + 5]]);
    Some(PlainV4 {
        src_mac: mac(6),
        dst_mac: mac(0),
        ttl: f[ETH + 8],
        src: be32(f, ETH + 12),
        dst: be32(f, ETH + 16),
        proto,
        sport: be16(f, l4),
        dport: be16(f, l4 + 2),
        tcp_flags,
        ip_len,
    })
}

impl PlainV4 {
    /// The packet as [`super::parse`] returns it.
    #[inline]
    pub fn packet(&self) -> Packet {
        let l4 = if self.proto == PROTO_TCP {
            L4::Tcp { sport: self.sport, dport: self.dport, flags: self.tcp_flags }
        } else {
            L4::Udp { sport: self.sport, dport: self.dport }
        };
        Packet {
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            l3_offset: ETH as u16,
            kind: Kind::Ip(IpPacket {
                family: Family::V4,
                src: self.src as u128,
                dst: self.dst as u128,
                proto: self.proto,
                hop_limit: self.ttl,
                ip_len: self.ip_len,
                frag: None,
                l4,
            }),
        }
    }
}
