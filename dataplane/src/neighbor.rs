//! ARP and IPv6 neighbour discovery: the appliance is every host's router, so it
//! answers for every address of the VPC (and the router's own addresses) with its
//! own MAC. That pulls all traffic, even between hosts of one subnet, through the
//! policy, as AWS's fabric does. Uplink neighbours get the same answers for VPC
//! addresses, so an upstream router can reach the VPC on-link.

use crate::addr::{Family, Ip};
use crate::forward::Source;
use crate::tables::Tables;
use crate::wire::{Arp, IpPacket, ARP_REQUEST};

fn is_vpc_address(t: &Tables, src: Source, ip: Ip) -> bool {
    match src {
        Source::Eni(e) => t.eni(e).is_some_and(|eni| t.vpc_of(ip) == Some(eni.vpc)),
        Source::Uplink(_) => t.vpc_of(ip).is_some(),
    }
}

/// Should this ARP packet be answered? Only requests for VPC addresses; never probes
/// (sender 0.0.0.0) or gratuitous announcements, which answering would turn into
/// address conflicts.
pub fn answers_arp(t: &Tables, src: Source, arp: &Arp) -> bool {
    arp.op == ARP_REQUEST
        && arp.sender_ip != 0
        && arp.sender_ip != arp.target_ip
        && is_vpc_address(t, src, Ip::v4(arp.target_ip))
}

/// Should this neighbour solicitation be answered? RFC 4861 validity (hop limit
/// 255), never duplicate-address detection (unspecified source), and only for VPC
/// addresses or the router's link-local addresses.
pub fn answers_solicit(t: &Tables, src: Source, ip: &IpPacket, target: u128) -> bool {
    ip.family() == Family::V6
        && ip.hop_limit == 255
        && ip.src != 0
        && (t.router_link_local.contains(&target) || is_vpc_address(t, src, Ip::v6(target)))
}
