//! The immutable snapshot the workers read: ports, VPCs, subnets, NACLs, ENIs with
//! their compiled security groups, and the lookups from MAC and IP to ENI. The
//! management plane builds a new one for every change and publishes it whole; a
//! worker picks it up between batches. It lives at the crate root (not in `policy/`)
//! because it carries forwarding state as well as policy.

use std::hash::BuildHasherDefault;
use std::sync::Arc;

use hashbrown::HashMap;
use rustc_hash::FxHasher;

use crate::addr::{Family, Ip, Mac, Prefix};
use crate::policy::nacl::Nacl;
use crate::policy::sg::SgDirection;
use crate::policy::Direction;

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Index of a port in [`Tables::ports`]; ports are fixed for the daemon's lifetime.
pub type PortId = u16;

/// Stable identity of an ENI for the daemon's lifetime: per-core state (conntrack
/// entries, counters) is keyed by it, so it survives table swaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EniId(pub u32);

#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    /// Frames on an uplink come from outside the VPC.
    pub uplink: bool,
    /// Where frames leaving through an uplink are addressed (the upstream router).
    pub gateway_mac: Mac,
}

#[derive(Clone, Debug)]
pub struct Vpc {
    pub id: String,
    pub cidrs: Vec<Prefix>,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: String,
    pub vpc: u16,
    pub cidrs: Vec<Prefix>,
    /// Index in [`Tables::nacls`].
    pub nacl: u16,
}

/// Idle timeouts in seconds (`ConnectionTrackingConfiguration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    pub tcp_established: u32,
    pub udp: u32,
    pub udp_stream: u32,
}

impl Default for CtTimeouts {
    fn default() -> Self {
        CtTimeouts { tcp_established: 432_000, udp: 30, udp_stream: 180 }
    }
}

#[derive(Clone, Debug)]
pub struct Eni {
    pub id: String,
    pub key: EniId,
    pub vpc: u16,
    pub subnet: u16,
    /// The port the ENI sits behind; `None` if no port lists it (unreachable).
    pub port: Option<PortId>,
    pub mac: Mac,
    /// Private IPv4 addresses, the primary first.
    pub ipv4: Vec<u32>,
    pub ipv6: Vec<u128>,
    pub source_dest_check: bool,
    pub timeouts: CtTimeouts,
    /// Shared: a change elsewhere reuses an ENI's compiled groups as they are.
    pub sg_ingress: Arc<SgDirection>,
    pub sg_egress: Arc<SgDirection>,
    /// Flow-log identity of the ENI.
    pub account_id: String,
    pub instance_id: Option<String>,
    /// Set when a flow log covers the ENI: its traffic is accounted and becomes records.
    pub flow_meta: Option<Arc<flowlog::EniMeta>>,
}

impl Eni {
    pub fn owns(&self, ip: Ip) -> bool {
        match ip.family {
            Family::V4 => self.ipv4.contains(&(ip.bits as u32)),
            Family::V6 => self.ipv6.contains(&ip.bits),
        }
    }
    pub fn sg(&self, dir: Direction) -> &SgDirection {
        match dir {
            Direction::Ingress => &self.sg_ingress,
            Direction::Egress => &self.sg_egress,
        }
    }
}

/// Conntrack limits (per core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtLimits {
    /// Entries one ENI may hold on one core, so one ENI's flood cannot take every
    /// other ENI's capacity.
    pub max_entries_per_eni: u32,
}

#[derive(Clone, Debug)]
pub struct Tables {
    /// Bumped for every published snapshot.
    pub generation: u64,
    /// Unique in the process for every table set built ([`Tables::next_snapshot`]):
    /// per-core caches of decisions belong to one snapshot. Tables do not change once
    /// a pipeline has seen them; an edited copy takes a new snapshot id.
    pub snapshot: u64,
    /// Bumped when any ENI's conntrack timeouts change (entries must be re-timed).
    pub timeouts_epoch: u64,
    /// When the snapshot was published on the appliance clock: timeout changes apply
    /// to entries still live at that moment.
    pub published_at: u64,
    pub router_mac: Mac,
    /// Link-local addresses the router answers neighbour solicitations for.
    pub router_link_local: [u128; 2],
    pub ports: Vec<Port>,
    pub uplink: Option<PortId>,
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub nacls: Vec<Nacl>,
    /// Indexed by [`EniId`]; `None` for ids of ENIs no longer configured.
    pub enis: Vec<Option<Eni>>,
    /// `(port, source MAC)` -> ENI, keyed by [`Tables::mac_key`].
    pub by_mac: FastMap<u64, EniId>,
    pub by_ipv4: FastMap<u32, EniId>,
    pub by_ipv6: FastMap<u128, EniId>,
    pub ct_limits: CtLimits,
    /// Accounting interval in seconds (the shortest `MaxAggregationInterval` of the
    /// flow logs), 0 when no flow log is configured.
    pub flow_interval_secs: u32,
    /// Every VPC CIDR as an address range, for the per-packet "is this a VPC
    /// address" tests (built by [`Tables::index_vpcs`]).
    pub vpc_ranges: Vec<VpcRange>,
}

/// One VPC CIDR as an inclusive range of address bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpcRange {
    pub family: Family,
    pub lo: u128,
    pub hi: u128,
    pub vpc: u16,
}

impl Tables {
    /// A snapshot id no other table set in this process has.
    pub fn next_snapshot() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    #[inline]
    pub fn eni(&self, id: EniId) -> Option<&Eni> {
        self.enis.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// One integer for (port, MAC): hashing it is one multiply.
    #[inline]
    pub fn mac_key(port: PortId, mac: Mac) -> u64 {
        let m = mac.0;
        (port as u64) << 48 | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
    }

    /// The ENI that owns `ip` (any of its private addresses).
    #[inline]
    pub fn eni_at(&self, ip: Ip) -> Option<EniId> {
        match ip.family {
            Family::V4 => self.by_ipv4.get(&(ip.bits as u32)).copied(),
            Family::V6 => self.by_ipv6.get(&ip.bits).copied(),
        }
    }

    /// The VPC whose CIDRs contain `ip`, if any.
    #[inline]
    pub fn vpc_of(&self, ip: Ip) -> Option<u16> {
        self.vpc_ranges.iter().find(|r| r.family == ip.family && r.lo <= ip.bits && ip.bits <= r.hi).map(|r| r.vpc)
    }

    /// Fills `vpc_ranges` from `vpcs`.
    pub fn index_vpcs(&mut self) {
        self.vpc_ranges = self
            .vpcs
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                v.cidrs.iter().map(move |c| {
                    let (lo, hi) = c.range();
                    VpcRange { family: c.family(), lo, hi, vpc: i as u16 }
                })
            })
            .collect();
    }

    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.ports.iter().position(|p| p.name == name).map(|i| i as PortId)
    }

    pub fn eni_by_name(&self, id: &str) -> Option<&Eni> {
        self.enis.iter().flatten().find(|e| e.id == id)
    }

    /// The link-local address an IPv6 router with `mac` uses (EUI-64).
    pub fn eui64_link_local(mac: Mac) -> u128 {
        let m = mac.0;
        let iid = [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
        (0xfe80u128 << 112) | u64::from_be_bytes(iid) as u128
    }
}
