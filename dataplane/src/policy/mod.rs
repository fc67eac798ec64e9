//! The policy: network ACLs and security groups compiled into classifiers, and the
//! immutable table snapshot the workers read.

pub mod classifier;
pub mod nacl;
pub mod sg;

/// Which way a packet crosses an ENI or a subnet boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The rule key the classifiers match on: the destination port for TCP/UDP,
/// `type << 8 | code` for ICMP and ICMPv6, 0 for other protocols.
pub fn rule_key(l4: &crate::wire::L4) -> u16 {
    use crate::wire::L4;
    match *l4 {
        L4::Tcp { dport, .. } | L4::Udp { dport, .. } => dport,
        L4::Icmp(icmp) => (icmp.ty as u16) << 8 | icmp.code as u16,
        L4::Other | L4::NotFirstFragment => 0,
    }
}
