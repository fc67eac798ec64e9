//! A per-core memo of the stateless part of a decision: where a packet goes (route,
//! egress port, next-hop MAC) and what the NACLs on the way say about it.
//!
//! Both depend only on the table snapshot and on (source, family, protocol, rule key,
//! source address, destination address), so a flow's packets after the first skip
//! the route lookup and the NACL classifiers (OVS's exact-match cache in spirit). The
//! security groups and conntrack are not memoised: they are state, judged per packet.
//! Entries are tagged with the snapshot's generation, so a new snapshot empties the
//! cache at once without touching it. Explained decisions (trace, `replay
//! --explain`) never use it: they show every hop as it is judged.
//!
//! Two-way set associative: a new path goes in front of its set and the older of the
//! two it had is forgotten (only a miss later).

use std::cell::Cell;

use crate::addr::{Family, Mac};
use crate::forward::{Dest, Source};
use crate::pipeline::Hop;
use crate::tables::PortId;

/// Sets per core (of two entries each): a power of two. 8192 entries of 80 bytes
/// (640 KiB) keep 4096 busy flows' paths with few conflicts.
pub const PATH_SETS: usize = 4096;

/// What a packet's path is, as far as no state decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    pub dest: Dest,
    pub egress_port: PortId,
    pub dst_mac: Mac,
    /// The first NACL hop that refuses the packet, if one does.
    pub nacl_refusal: Option<Hop>,
}

/// The inputs a [`Path`] is a function of (besides the snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    src: u128,
    dst: u128,
    /// Source (ENI id or uplink port, and which), family, protocol, rule key.
    meta: u64,
}

impl PathKey {
    #[inline]
    pub fn new(source: Source, family: Family, proto: u8, key16: u16, src: u128, dst: u128) -> PathKey {
        let source = match source {
            Source::Eni(e) => e.0 as u64,
            Source::Uplink(p) => 1 << 31 | p as u64,
        };
        let meta = source << 32 | ((family == Family::V6) as u64) << 24 | (proto as u64) << 16 | key16 as u64;
        PathKey { src, dst, meta }
    }

    /// The first entry of the key's set.
    #[inline]
    fn set(&self) -> usize {
        let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(32);
        let mut h = fold(self.src).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ fold(self.dst).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ self.meta.wrapping_mul(0xd6e8_feb8_6659_fd93);
        h ^= h >> 32;
        (h as usize & (PATH_SETS - 1)) * 2
    }
}

#[derive(Clone, Copy)]
struct Entry {
    key: PathKey,
    /// The snapshot generation plus one; 0 is an empty entry.
    generation: u64,
    path: Path,
}

/// The memo. Lookups happen while deciding, which only reads the pipeline's state;
/// the memo changes there too, through `Cell`s: it is invisible to every result.
pub struct PathCache {
    entries: Box<[Cell<Entry>]>,
}

impl Default for PathCache {
    fn default() -> Self {
        let empty = Entry {
            key: PathKey { src: 0, dst: 0, meta: 0 },
            generation: 0,
            path: Path { dest: Dest::Uplink(0), egress_port: 0, dst_mac: Mac::default(), nacl_refusal: None },
        };
        PathCache { entries: vec![Cell::new(empty); PATH_SETS * 2].into_boxed_slice() }
    }
}

impl PathCache {
    #[inline]
    pub fn get(&self, key: &PathKey, generation: u64) -> Option<Path> {
        let set = key.set();
        for e in &self.entries[set..set + 2] {
            let e = e.get();
            if e.generation == generation + 1 && e.key == *key {
                return Some(e.path);
            }
        }
        None
    }

    #[cold]
    pub fn put(&self, key: PathKey, generation: u64, path: Path) {
        let set = key.set();
        self.entries[set + 1].set(self.entries[set].get());
        self.entries[set].set(Entry { key, generation: generation + 1, path });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::EniId;

    fn path(port: PortId) -> Path {
        Path { dest: Dest::Uplink(port), egress_port: port, dst_mac: Mac::default(), nacl_refusal: None }
    }

    #[test]
    fn a_path_is_remembered_for_its_own_inputs_and_generation_only() {
        let cache = PathCache::default();
        let key = PathKey::new(Source::Eni(EniId(3)), Family::V4, 6, 443, 1, 2);
        assert_eq!(cache.get(&key, 7), None);
        cache.put(key, 7, path(1));
        assert_eq!(cache.get(&key, 7), Some(path(1)));
        assert_eq!(cache.get(&key, 8), None, "a new snapshot forgets every path");
        // A second path of the same set keeps the first; a third forgets it.
        let same_set = |n: u128| {
            let k = PathKey::new(Source::Eni(EniId(3)), Family::V4, 6, 443, 1, 2 + n);
            (k.set() == key.set()).then_some(k)
        };
        let mut others = (1..).filter_map(same_set);
        let (second, third) = (others.next().unwrap(), others.next().unwrap());
        cache.put(second, 7, path(2));
        assert_eq!((cache.get(&key, 7), cache.get(&second, 7)), (Some(path(1)), Some(path(2))));
        cache.put(third, 7, path(3));
        assert_eq!(cache.get(&key, 7), None);
        assert_eq!((cache.get(&second, 7), cache.get(&third, 7)), (Some(path(2)), Some(path(3))));
        for other in [
            PathKey::new(Source::Eni(EniId(4)), Family::V4, 6, 443, 1, 2),
            PathKey::new(Source::Uplink(3), Family::V4, 6, 443, 1, 2),
            PathKey::new(Source::Eni(EniId(3)), Family::V6, 6, 443, 1, 2),
            PathKey::new(Source::Eni(EniId(3)), Family::V4, 17, 443, 1, 2),
            PathKey::new(Source::Eni(EniId(3)), Family::V4, 6, 80, 1, 2),
            PathKey::new(Source::Eni(EniId(3)), Family::V4, 6, 443, 2, 1),
        ] {
            assert_eq!(cache.get(&other, 7), None, "{other:?}");
        }
    }
}
