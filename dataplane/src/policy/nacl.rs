//! Network ACLs: stateless, numbered, allow/deny, first match, with the implicit `*` deny.

use super::classifier::{ClassRule, Classifier, NO_MATCH};
use crate::addr::{Family, Prefix};

/// One NACL entry, with the protocol/port semantics already applied: `keys` is the
/// range of rule keys (ports or ICMP type/code) it matches, full for "all".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclRule {
    pub rule_number: u32,
    pub allow: bool,
    pub proto: Option<u8>,
    pub keys: (u16, u16),
    pub cidr: Prefix,
    /// How the operator wrote it, for explanations (`100 allow tcp 80-80 0.0.0.0/0`).
    pub text: String,
}

/// One direction of one NACL.
#[derive(Clone, Debug, Default)]
pub struct NaclDirection {
    /// Entries in rule-number order; a classifier priority is an index here.
    pub rules: Vec<NaclRule>,
    v4: Classifier<u32>,
    v6: Classifier<u128>,
}

/// The result of one NACL hop: the entry that matched, or `None` for the `*` deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NaclMatch {
    pub rule: Option<u32>,
    pub allow: bool,
}

impl NaclDirection {
    pub fn build(mut rules: Vec<NaclRule>) -> NaclDirection {
        rules.sort_by_key(|r| r.rule_number);
        let class = |family: Family| -> Vec<ClassRule> {
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.cidr.family() == family)
                .map(|(i, r)| {
                    let (addr_lo, addr_hi) = r.cidr.range();
                    ClassRule {
                        proto: r.proto,
                        key_lo: r.keys.0,
                        key_hi: r.keys.1,
                        addr_lo,
                        addr_hi,
                        priority: i as u32,
                    }
                })
                .collect()
        };
        let v4 = Classifier::build(&class(Family::V4));
        let v6 = Classifier::build(&class(Family::V6));
        NaclDirection { rules, v4, v6 }
    }

    /// First match for a packet whose peer (source for ingress, destination for
    /// egress) is `peer`.
    #[inline]
    pub fn judge(&self, family: Family, proto: u8, key: u16, peer: u128) -> NaclMatch {
        let i = match family {
            Family::V4 => self.v4.lookup(proto, key, peer as u32),
            Family::V6 => self.v6.lookup(proto, key, peer),
        };
        if i == NO_MATCH {
            NaclMatch { rule: None, allow: false }
        } else {
            NaclMatch { rule: Some(i), allow: self.rules[i as usize].allow }
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Nacl {
    pub id: String,
    pub ingress: NaclDirection,
    pub egress: NaclDirection,
}
