//! Frames on the wire: a total, allocation-free parser that turns a frame into a plain
//! [`Packet`] (what the policy needs, with offsets into the frame) or a [`Malformed`]
//! reason, and the builders for the few frames the appliance writes itself (ARP and
//! neighbour-advertisement replies). Nothing here panics on any input.

mod parse;
mod plain;
pub mod reply;

pub use parse::{neighbor_solicitation, parse, quoted_flow};
pub use plain::{plain_ipv4, PlainV4};

use crate::addr::{Family, Ip, Mac};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// What a frame carries, as far as the data path cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    /// Offset of the L3 header (after any 802.1Q/802.1ad tags).
    pub l3_offset: u16,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Arp(Arp),
    Ip(IpPacket),
    /// An ethertype the appliance does not route (LLDP, IPX, ...).
    OtherEthertype(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: u32,
    pub target_mac: Mac,
    pub target_ip: u32,
}

pub const ARP_REQUEST: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket {
    pub family: Family,
    /// Address bits (IPv4 in the low 32 bits); plain words, not `Ip`, so the parsed
    /// packet stays small and moves cheaply.
    pub src: u128,
    pub dst: u128,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub proto: u8,
    pub hop_limit: u8,
    /// Length of the datagram (IP header + payload), without Ethernet padding.
    pub ip_len: u16,
    pub frag: Option<Fragment>,
    pub l4: L4,
}

impl IpPacket {
    pub fn family(&self) -> Family {
        self.family
    }
    pub fn src_ip(&self) -> Ip {
        Ip { family: self.family, bits: self.src }
    }
    pub fn dst_ip(&self) -> Ip {
        Ip { family: self.family, bits: self.dst }
    }
}

/// Where a fragment sits in its datagram. Unfragmented packets have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Offset in 8-byte units; 0 for the first fragment.
    pub offset: u16,
    pub more: bool,
}

impl Fragment {
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp(Icmp),
    /// A protocol without ports (GRE, ESP, ...), judged on addresses and protocol.
    Other,
    /// A non-first fragment: the L4 header is in another fragment.
    NotFirstFragment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp {
    pub ty: u8,
    pub code: u8,
    pub msg: IcmpMsg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpMsg {
    /// Echo, timestamp, information and address-mask requests and replies (ICMPv6: echo).
    Query {
        id: u16,
        request_type: u8,
        is_reply: bool,
    },
    /// Destination unreachable, time exceeded, packet too big. The quoted datagram
    /// starts at frame offset `quote`; read it with [`quoted_flow`] when needed (only
    /// a conntrack lookup needs it, so the hot path does not pay for it).
    Error {
        quote: u16,
    },
    /// IPv6 neighbour solicitation whose ICMPv6 message starts at frame offset `at`;
    /// read it with [`neighbor_solicitation`].
    NeighborSolicit {
        at: u16,
    },
    /// Other neighbour-discovery messages (RS, RA, NA, redirect).
    NeighborDiscovery,
    Other,
}

/// The header quoted inside an ICMP error, as the flow it belongs to (in the
/// direction the quoted packet travelled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    pub src: Ip,
    pub dst: Ip,
    pub proto: u8,
    pub l4: EmbeddedL4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddedL4 {
    Ports { sport: u16, dport: u16 },
    Query { id: u16, request_type: u8, is_reply: bool },
    None,
}

/// For ICMP (v4) queries: the request type a message belongs to, and whether it is
/// the reply. `None` for any other type.
pub fn icmp4_query(ty: u8) -> Option<(u8, bool)> {
    match ty {
        8 | 13 | 15 | 17 => Some((ty, false)),
        0 => Some((8, true)),
        14 | 16 | 18 => Some((ty - 1, true)),
        _ => None,
    }
}

pub fn icmp6_query(ty: u8) -> Option<(u8, bool)> {
    match ty {
        128 => Some((128, false)),
        129 => Some((128, true)),
        _ => None,
    }
}

/// ICMP types that carry a quoted datagram and count as related traffic.
pub fn is_icmp_error(family: Family, ty: u8) -> bool {
    match family {
        Family::V4 => matches!(ty, 3 | 11),
        Family::V6 => matches!(ty, 1..=3),
    }
}

macro_rules! malformed_kinds {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame could not be parsed. Every one is a drop reason with its own counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Malformed { $(#[doc = $doc] $variant,)* }

        impl Malformed {
            pub const ALL: &'static [Malformed] = &[$(Malformed::$variant,)*];
            pub fn name(self) -> &'static str {
                match self { $(Malformed::$variant => $name,)* }
            }
        }
    };
}

malformed_kinds! {
    Ethernet => "truncated-ethernet", "Shorter than an Ethernet header.";
    Vlan => "truncated-vlan", "An 802.1Q/802.1ad tag cut short, or more than two tags.";
    Arp => "bad-arp", "ARP that is not Ethernet/IPv4 or is cut short.";
    Ipv4Header => "truncated-ipv4", "Shorter than an IPv4 header, or not version 4.";
    Ipv4Ihl => "bad-ipv4-ihl", "IHL below 5 or beyond the frame.";
    Ipv4TotalLength => "bad-ipv4-total-length", "Total length below the header or beyond the frame.";
    Ipv6Header => "truncated-ipv6", "Shorter than an IPv6 header, or not version 6.";
    Ipv6PayloadLength => "bad-ipv6-payload-length", "Payload length beyond the frame (or zero with a payload: jumbograms are not supported).";
    Ipv6Extension => "bad-ipv6-extension", "An extension header cut short or misplaced.";
    Ipv6ExtensionChain => "ipv6-extension-chain", "More extension headers than any real stack sends.";
    FragmentOffset => "bad-fragment", "A fragment that would end beyond 65535 bytes, or overlaps the TCP header.";
    TinyFragment => "tiny-fragment", "A first fragment too short for its L4 header.";
    Tcp => "truncated-tcp", "TCP header cut short.";
    TcpDataOffset => "bad-tcp-data-offset", "TCP data offset below 5 or beyond the segment.";
    Udp => "truncated-udp", "UDP header cut short.";
    UdpLength => "bad-udp-length", "UDP length below 8 or beyond the datagram.";
    Icmp => "truncated-icmp", "ICMP header cut short.";
}

/// Reads a big-endian u16 at `at`; `None` past the end.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline(always)]
pub(crate) fn be128(b: &[u8], at: usize) -> Option<u128> {
    let s = b.get(at..at + 16)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Some(u128::from_be_bytes(a))
}

#[inline(always)]
pub(crate) fn mac_at(b: &[u8], at: usize) -> Option<Mac> {
    let s = b.get(at..at + 6)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(Mac(m))
}

#[cfg(test)]
mod tests;
