//! Frames the appliance writes itself: ARP replies and IPv6 neighbour advertisements,
//! built in place over the request's buffer. Also the Ethernet rewrite for forwarding.

use super::*;

pub const ARP_REPLY_LEN: usize = 42;
pub const NA_LEN: usize = 14 + 40 + 32;

/// Writes an Ethernet header ending right before `l3_offset` (dropping any VLAN tags)
/// and returns where the frame now starts.
#[inline]
pub fn rewrite_ethernet(buf: &mut [u8], l3_offset: usize, dst: Mac, src: Mac, ethertype: u16) -> usize {
    let head = l3_offset - 14;
    buf[head..head + 6].copy_from_slice(&dst.0);
    buf[head + 6..head + 12].copy_from_slice(&src.0);
    buf[head + 12..head + 14].copy_from_slice(&ethertype.to_be_bytes());
    head
}

/// Turns an ARP request into the reply "`arp.target_ip` is at `router_mac`".
/// Returns the reply's length; it starts at offset 0.
pub fn arp_reply(buf: &mut [u8], arp: &Arp, router_mac: Mac) -> usize {
    let f = &mut buf[..ARP_REPLY_LEN];
    f[0..6].copy_from_slice(&arp.sender_mac.0);
    f[6..12].copy_from_slice(&router_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    f[22..28].copy_from_slice(&router_mac.0);
    f[28..32].copy_from_slice(&arp.target_ip.to_be_bytes());
    f[32..38].copy_from_slice(&arp.sender_mac.0);
    f[38..42].copy_from_slice(&arp.sender_ip.to_be_bytes());
    ARP_REPLY_LEN
}

/// Writes a solicited neighbour advertisement "`target` is at `router_mac`" (router,
/// solicited and override flags set) to `to`/`to_mac`. `None` if the buffer is too small.
pub fn neighbor_advert(buf: &mut [u8], target: u128, to: u128, to_mac: Mac, router_mac: Mac) -> Option<usize> {
    let f = buf.get_mut(..NA_LEN)?;
    f[0..6].copy_from_slice(&to_mac.0);
    f[6..12].copy_from_slice(&router_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let ip = &mut f[14..];
    ip[0..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, PROTO_ICMPV6, 255]);
    ip[8..24].copy_from_slice(&target.to_be_bytes());
    ip[24..40].copy_from_slice(&to.to_be_bytes());
    let icmp = &mut ip[40..72];
    icmp[0..8].copy_from_slice(&[136, 0, 0, 0, 0xe0, 0, 0, 0]);
    icmp[8..24].copy_from_slice(&target.to_be_bytes());
    icmp[24..26].copy_from_slice(&[2, 1]);
    icmp[26..32].copy_from_slice(&router_mac.0);
    let sum = icmpv6_checksum(target, to, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(NA_LEN)
}

/// The ICMPv6 checksum over the pseudo-header and `msg` (whose checksum field is zero).
pub fn icmpv6_checksum(src: u128, dst: u128, msg: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
        }
    };
    add(&src.to_be_bytes());
    add(&dst.to_be_bytes());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, PROTO_ICMPV6]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
