//! Security groups as one ENI sees them: the union of all its groups' rules for one
//! direction, as an allow classifier, plus what section 2.1 needs to tell tracked from
//! untracked flows.

use super::classifier::{ClassRule, Classifier, NO_MATCH};
use crate::addr::{Family, Prefix};
use crate::wire::{PROTO_TCP, PROTO_UDP};

/// Where a rule came from, for explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRuleInfo {
    pub group_id: String,
    pub rule_id: String,
    /// e.g. `tcp 80 from 0.0.0.0/0` or `all to sg-0abc (3 addresses)`.
    pub text: String,
}

/// One match entry: a rule (by index in `SgDirection::rules`) applied to one peer
/// prefix. A group reference becomes one entry per member address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgMatch {
    pub rule: u32,
    pub proto: Option<u8>,
    pub keys: (u16, u16),
    pub peer: Prefix,
}

/// Sorted, disjoint, inclusive port ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    fn add(&mut self, lo: u16, hi: u16) {
        self.0.push((lo, hi));
        self.0.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(self.0.len());
        for &(lo, hi) in &self.0 {
            match merged.last_mut() {
                Some(last) if lo as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        self.0 = merged;
    }
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|r| r.1 < port);
        self.0.get(i).is_some_and(|r| r.0 <= port)
    }
    pub fn is_full(&self) -> bool {
        self.0.first() == Some(&(0, 65535))
    }
}

/// The rules of one direction and family whose peer is every address (`0.0.0.0/0`,
/// `::/0`): what decides whether a TCP/UDP flow is untracked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenRules {
    all_protocols: bool,
    tcp: PortSet,
    udp: PortSet,
}

impl OpenRules {
    fn ports(&self, proto: u8) -> Option<&PortSet> {
        match proto {
            PROTO_TCP => Some(&self.tcp),
            PROTO_UDP => Some(&self.udp),
            _ => None,
        }
    }
    /// A rule for all addresses allows `proto` to `port`.
    pub fn allows(&self, proto: u8, port: u16) -> bool {
        self.all_protocols || self.ports(proto).is_some_and(|p| p.contains(port))
    }
    /// A rule for all addresses allows `proto` on all ports 0-65535.
    pub fn all_ports(&self, proto: u8) -> bool {
        self.all_protocols || self.ports(proto).is_some_and(PortSet::is_full)
    }
}

/// Why a flow is untracked (section 2.1), seen from the hop that judged the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untracked {
    /// This direction allows the packet's destination port from/to everywhere and the
    /// other direction allows all ports: the packet opens an untracked flow.
    Opener,
    /// The other direction allows the packet's source port from/to everywhere and this
    /// direction allows all ports: the packet answers an untracked flow.
    Answer,
}

/// One direction of one ENI's security groups.
#[derive(Clone, Debug, Default)]
pub struct SgDirection {
    pub rules: Vec<SgRuleInfo>,
    v4: Classifier<u32>,
    v6: Classifier<u128>,
    open: [OpenRules; 2],
}

impl SgDirection {
    pub fn build(rules: Vec<SgRuleInfo>, matches: &[SgMatch]) -> SgDirection {
        let class = |family: Family| -> Vec<ClassRule> {
            matches
                .iter()
                .filter(|m| m.peer.family() == family)
                .map(|m| {
                    let (addr_lo, addr_hi) = m.peer.range();
                    ClassRule { proto: m.proto, key_lo: m.keys.0, key_hi: m.keys.1, addr_lo, addr_hi, priority: m.rule }
                })
                .collect()
        };
        let mut open = [OpenRules::default(), OpenRules::default()];
        for m in matches.iter().filter(|m| m.peer.is_any()) {
            let o = &mut open[m.peer.family().index()];
            match m.proto {
                None => o.all_protocols = true,
                Some(PROTO_TCP) => o.tcp.add(m.keys.0, m.keys.1),
                Some(PROTO_UDP) => o.udp.add(m.keys.0, m.keys.1),
                Some(_) => {}
            }
        }
        SgDirection {
            rules,
            v4: Classifier::build(&class(Family::V4)),
            v6: Classifier::build(&class(Family::V6)),
            open,
        }
    }

    /// The first rule (in group order, then rule order) allowing the packet, if any.
    #[inline]
    pub fn judge(&self, family: Family, proto: u8, key: u16, peer: u128) -> Option<u32> {
        let i = match family {
            Family::V4 => self.v4.lookup(proto, key, peer as u32),
            Family::V6 => self.v6.lookup(proto, key, peer),
        };
        (i != NO_MATCH).then_some(i)
    }

    pub fn open(&self, family: Family) -> &OpenRules {
        &self.open[family.index()]
    }

    pub fn match_count(&self) -> usize {
        self.v4.rule_count() + self.v6.rule_count()
    }
}

/// Section 2.1 for a TCP/UDP packet allowed by the rules at a hop with no conntrack
/// entry: `this` is the hop's direction, `other` the opposite one, of the same ENI.
pub fn untracked(
    this: &SgDirection,
    other: &SgDirection,
    family: Family,
    proto: u8,
    sport: u16,
    dport: u16,
) -> Option<Untracked> {
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let (this, other) = (this.open(family), other.open(family));
    if this.allows(proto, dport) && other.all_ports(proto) {
        Some(Untracked::Opener)
    } else if other.allows(proto, sport) && this.all_ports(proto) {
        Some(Untracked::Answer)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Ip;

    fn m(rule: u32, proto: Option<u8>, keys: (u16, u16), peer: Prefix) -> SgMatch {
        SgMatch { rule, proto, keys, peer }
    }
    fn info(n: u32) -> SgRuleInfo {
        SgRuleInfo { group_id: "sg-1".into(), rule_id: format!("sgr-{n}"), text: String::new() }
    }

    #[test]
    fn port_set_merges_and_answers() {
        let mut s = PortSet::default();
        s.add(10, 20);
        s.add(21, 30);
        s.add(5, 6);
        assert_eq!(s.0, vec![(5, 6), (10, 30)]);
        assert!(s.contains(30) && s.contains(5) && !s.contains(7) && !s.contains(31));
        s.add(0, 65535);
        assert!(s.is_full());
    }

    /// The doc example of section 2.1: inbound tcp/22 from one host, tcp/80 from
    /// everywhere, ICMP from everywhere; outbound everything.
    #[test]
    fn doc_example_of_untracked_flows() {
        let any4 = Prefix::any(Family::V4);
        let host = Prefix::host(Ip::v4(0xcb00_7101));
        let ingress = SgDirection::build(
            vec![info(0), info(1), info(2)],
            &[m(0, Some(6), (22, 22), host), m(1, Some(6), (80, 80), any4), m(2, Some(1), (0, 65535), any4)],
        );
        let egress = SgDirection::build(vec![info(0)], &[m(0, None, (0, 65535), any4)]);
        assert_eq!(untracked(&ingress, &egress, Family::V4, 6, 40000, 80), Some(Untracked::Opener));
        assert_eq!(untracked(&ingress, &egress, Family::V4, 6, 40000, 22), None);
        assert_eq!(untracked(&egress, &ingress, Family::V4, 6, 80, 40000), Some(Untracked::Answer));
        assert_eq!(untracked(&ingress, &egress, Family::V4, 1, 0, 0x0800), None, "ICMP is always tracked");
        // Without the IPv4 all-outbound rule, everything IPv4 is tracked.
        let egress6 = SgDirection::build(vec![info(0)], &[m(0, None, (0, 65535), Prefix::any(Family::V6))]);
        assert_eq!(untracked(&ingress, &egress6, Family::V4, 6, 40000, 80), None);
        assert_eq!(ingress.judge(Family::V4, 6, 22, 0xcb00_7101), Some(0));
        assert_eq!(ingress.judge(Family::V4, 6, 22, 0xcb00_7102), None);
    }
}
