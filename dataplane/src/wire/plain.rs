//! The common case recognised without the full parse: an untagged IPv4 frame with
//! no options, not fragmented, carrying TCP or UDP. It exists so a frame of a known
//! flow can find its cached decision in a few dozen instructions.
//!
//! `None` means "not this shape", never "malformed": such frames go through
//! [`super::parse`], which decides. Whatever this accepts, `parse` accepts with the
//! same fields (checked against it in `wire/tests.rs`).

use super::{PROTO_TCP, PROTO_UDP};

/// The fields of a plain IPv4 TCP/UDP frame that decide its fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainV4 {
    /// The source MAC as a big-endian 48-bit number (see `Tables::mac_key`).
    pub src_mac: u64,
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
    let m = &f[6..12];
    Some(PlainV4 {
        src_mac: u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]),
        src: be32(f, ETH + 12),
        dst: be32(f, ETH + 16),
        proto,
        sport: be16(f, l4),
        dport: be16(f, l4 + 2),
        tcp_flags,
        ip_len,
    })
}
