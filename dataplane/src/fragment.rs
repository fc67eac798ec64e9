//! Fragments: the first fragment of a datagram is judged like any packet, and its
//! verdict is remembered per core for 30 s under (src, dst, protocol, id) so the later
//! fragments, which carry no ports, get the same one. IPv6 keys leave the protocol
//! out (RFC 8200 reassembles on source, destination and identification).
//!
//! A small set-associative cache, allocated once; a full set forgets its oldest entry.

use crate::addr::Family;
use crate::conntrack::{Nanos, NANOS_PER_SEC};
use crate::tables::PortId;

pub const FRAGMENT_MEMORY_SECS: u64 = 30;
const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    pub family: Family,
    pub src: u128,
    pub dst: u128,
    pub proto: u8,
    pub id: u32,
}

impl FragKey {
    fn hash(&self) -> u64 {
        let mut h = (self.src as u64 ^ (self.src >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= (self.dst as u64 ^ (self.dst >> 64) as u64).rotate_left(29);
        h = (h ^ (self.id as u64) << 8 ^ self.proto as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 31)
    }
}

/// What happened to the first fragment, replayed for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remembered {
    Forward { port: PortId, dst_mac: crate::addr::Mac },
    Reject(crate::pipeline::Hop),
    ConntrackFull,
}

#[derive(Clone, Copy)]
struct Slot {
    key: FragKey,
    what: Remembered,
    /// The datagram's ports (from the first fragment), for flow-log accounting.
    ports: (u16, u16),
    at: Nanos,
}

pub struct FragmentCache {
    sets: Vec<[Option<Slot>; WAYS]>,
    mask: usize,
}

impl FragmentCache {
    pub fn new(capacity: usize) -> FragmentCache {
        let sets = (capacity / WAYS).next_power_of_two().max(1);
        FragmentCache { sets: vec![[None; WAYS]; sets], mask: sets - 1 }
    }

    fn fresh(slot: &Slot, now: Nanos) -> bool {
        now.saturating_sub(slot.at) <= FRAGMENT_MEMORY_SECS * NANOS_PER_SEC
    }

    pub fn get(&self, key: &FragKey, now: Nanos) -> Option<(Remembered, (u16, u16))> {
        let set = &self.sets[key.hash() as usize & self.mask];
        set.iter().flatten().find(|s| s.key == *key && Self::fresh(s, now)).map(|s| (s.what, s.ports))
    }

    pub fn remember(&mut self, key: FragKey, what: Remembered, ports: (u16, u16), now: Nanos) {
        let set = &mut self.sets[key.hash() as usize & self.mask];
        let way = set
            .iter()
            .position(|s| s.is_none_or(|s| s.key == key || !Self::fresh(&s, now)))
            .unwrap_or_else(|| (0..WAYS).min_by_key(|&i| set[i].map_or(0, |s| s.at)).unwrap_or(0));
        set[way] = Some(Slot { key, what, ports, at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: u32) -> FragKey {
        FragKey { family: Family::V4, src: 1, dst: 2, proto: 17, id }
    }

    #[test]
    fn remembers_for_thirty_seconds() {
        let mut c = FragmentCache::new(64);
        c.remember(k(1), Remembered::ConntrackFull, (1, 2), 0);
        assert_eq!(c.get(&k(1), 30 * NANOS_PER_SEC), Some((Remembered::ConntrackFull, (1, 2))));
        assert_eq!(c.get(&k(1), 30 * NANOS_PER_SEC + 1), None);
        assert_eq!(c.get(&k(2), 0), None);
    }

    #[test]
    fn a_full_set_forgets_the_oldest() {
        let mut c = FragmentCache::new(WAYS);
        for id in 0..WAYS as u32 + 1 {
            c.remember(k(id), Remembered::ConntrackFull, (0, 0), id as u64);
        }
        assert_eq!(c.get(&k(0), 10), None);
        assert!(c.get(&k(WAYS as u32), 10).is_some());
    }
}
