//! Flow-log accounting: every packet that reaches a policy decision at an ENI with a
//! flow log is counted to (ENI, direction, 5-tuple, action) for the current
//! aggregation interval. Tracked flows count in their conntrack entry (it is already
//! in hand); untracked and refused traffic counts here, in a small fixed-capacity
//! per-core table. At the end of each interval both are turned into flow records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use flowlog::{Action, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};

use crate::addr::Family;
use crate::tables::EniId;
use crate::wire::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// Traffic of one flow direction within the current interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acct {
    pub packets: u64,
    pub bytes: u64,
    /// Unix seconds of the first and last packet.
    pub first: u64,
    pub last: u64,
    /// OR of FIN=1, SYN=2, RST=4, SYN-ACK=18 (flow-log semantics).
    pub tcp_flags: u8,
}

impl Acct {
    #[inline]
    pub fn add(&mut self, bytes: u64, now_s: u64, tcp_flags: u8) {
        if self.packets == 0 {
            self.first = now_s;
        }
        self.packets += 1;
        self.bytes += bytes;
        self.last = self.last.max(now_s);
        self.tcp_flags |= log_flags(tcp_flags);
    }
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }
}

/// The flags a flow log reports: FIN, SYN, RST, and SYN-ACK as 18; ACK alone and the
/// rest are dropped (section 4.2).
#[inline]
pub fn log_flags(tcp: u8) -> u8 {
    let mut f = tcp & (TCP_FIN | TCP_SYN | TCP_RST);
    if tcp & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
        f |= TCP_ACK;
    }
    f
}

/// One flow direction at one ENI, as the packets carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub eni: EniId,
    pub egress: bool,
    pub accept: bool,
    /// Egress to the uplink (traffic-path 2) rather than to the VPC (1).
    pub to_uplink: bool,
    pub family: Family,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
}

impl FlowId {
    pub(crate) fn hash(&self) -> u64 {
        let fold = |x: u128| x as u64 ^ ((x >> 64) as u64).rotate_left(29);
        let meta = (self.sport as u64) << 48
            | (self.dport as u64) << 32
            | (self.proto as u64) << 24
            | (self.egress as u64) << 1
            | self.accept as u64
            | (self.eni.0 as u64) << 2;
        let mut h = fold(self.src).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ fold(self.dst).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ meta;
        h ^= h >> 31;
        h.wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (h >> 29)
    }
}

/// Fixed-capacity table of flow directions not tracked by conntrack.
pub struct FlowTable {
    slots: Vec<Option<(FlowId, Acct)>>,
    mask: usize,
    used: usize,
    limit: usize,
    /// Flow directions that found no room, per ENI: reported as SKIPDATA.
    skipped: Vec<u64>,
}

impl FlowTable {
    pub fn new(capacity: usize) -> FlowTable {
        let slots = (capacity * 2).next_power_of_two().max(16);
        FlowTable { slots: vec![None; slots], mask: slots - 1, used: 0, limit: capacity, skipped: Vec::new() }
    }

    #[inline]
    pub fn add(&mut self, id: &FlowId, bytes: u64, now_s: u64, tcp_flags: u8) {
        let mut i = id.hash() as usize & self.mask;
        loop {
            match &mut self.slots[i] {
                Some((k, a)) if k == id => return a.add(bytes, now_s, tcp_flags),
                Some(_) => i = (i + 1) & self.mask,
                None => {
                    if self.used >= self.limit {
                        let e = id.eni.0 as usize;
                        if self.skipped.len() <= e {
                            self.skipped.resize(e + 1, 0);
                        }
                        self.skipped[e] += 1;
                        return;
                    }
                    let mut a = Acct::default();
                    a.add(bytes, now_s, tcp_flags);
                    self.slots[i] = Some((*id, a));
                    self.used += 1;
                    return;
                }
            }
        }
    }

    /// Flow directions accounted in the table.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Hands every flow direction to `f` and empties the table.
    pub fn drain(&mut self, mut f: impl FnMut(&FlowId, &Acct)) {
        if self.used > 0 {
            for slot in self.slots.iter_mut() {
                if let Some((id, a)) = slot.take() {
                    f(&id, &a);
                }
            }
            self.used = 0;
        }
    }

    /// ENIs that lost flows since the last call, and how many.
    pub fn take_skipped(&mut self) -> Vec<(EniId, u64)> {
        let out =
            self.skipped.iter().enumerate().filter(|(_, n)| **n > 0).map(|(e, n)| (EniId(e as u32), *n)).collect();
        self.skipped.iter_mut().for_each(|n| *n = 0);
        out
    }
}

fn ip(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The flow record for one flow direction (section 4.1/4.3: the ENI side shows the
/// ENI's primary private IPv4; `pkt-*` keep the real addresses).
pub fn record(meta: &Arc<EniMeta>, id: &FlowId, a: &Acct) -> FlowRecord {
    let (pkt_src, pkt_dst) = (ip(id.family, id.src), ip(id.family, id.dst));
    let primary = |real: IpAddr| match (real, meta.primary_ipv4) {
        (IpAddr::V4(_), Some(p)) => IpAddr::V4(p),
        _ => real,
    };
    let (srcaddr, dstaddr) = if id.egress { (primary(pkt_src), pkt_dst) } else { (pkt_src, primary(pkt_dst)) };
    FlowRecord {
        eni: meta.clone(),
        start: a.first,
        end: a.last,
        log_status: LogStatus::Ok,
        traffic: Some(Traffic {
            srcaddr,
            dstaddr,
            pkt_srcaddr: pkt_src,
            pkt_dstaddr: pkt_dst,
            srcport: id.sport,
            dstport: id.dport,
            protocol: id.proto,
            packets: a.packets,
            bytes: a.bytes,
            action: if id.accept { Action::Accept } else { Action::Reject },
            tcp_flags: Some(a.tcp_flags),
            direction: if id.egress { FlowDirection::Egress } else { FlowDirection::Ingress },
            traffic_path: id.egress.then_some(if id.to_uplink { 2 } else { 1 }),
            // No AWS services behind the appliance.
            pkt_src_aws_service: None,
            pkt_dst_aws_service: None,
        }),
    }
}

/// A SKIPDATA record: `n` flow directions of this ENI were not recorded.
pub fn skipdata(meta: &Arc<EniMeta>, start: u64, end: u64) -> FlowRecord {
    FlowRecord { eni: meta.clone(), start, end, log_status: LogStatus::SkipData, traffic: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_section_4_2() {
        assert_eq!(log_flags(TCP_SYN), 2);
        assert_eq!(log_flags(TCP_SYN | TCP_ACK), 18);
        assert_eq!(log_flags(TCP_ACK), 0);
        assert_eq!(log_flags(TCP_ACK | 0x08), 0, "PSH+ACK");
        assert_eq!(log_flags(TCP_SYN | 0x40), 2, "SYN+ECE");
        let mut a = Acct::default();
        a.add(60, 10, TCP_SYN);
        a.add(60, 11, TCP_FIN | TCP_ACK);
        assert_eq!(a.tcp_flags, 3, "SYN+FIN over the interval");
    }

    #[test]
    fn table_counts_and_reports_what_did_not_fit() {
        let id = |sport| FlowId {
            eni: EniId(3),
            egress: true,
            accept: false,
            to_uplink: true,
            family: Family::V4,
            proto: 6,
            src: 1,
            dst: 2,
            sport,
            dport: 80,
        };
        let mut t = FlowTable::new(2);
        t.add(&id(1), 100, 5, 0);
        t.add(&id(1), 50, 7, 0);
        t.add(&id(2), 10, 6, 0);
        t.add(&id(3), 10, 6, 0);
        let mut got = Vec::new();
        t.drain(|i, a| got.push((i.sport, *a)));
        got.sort_by_key(|g| g.0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, Acct { packets: 2, bytes: 150, first: 5, last: 7, tcp_flags: 0 });
        assert_eq!(t.take_skipped(), vec![(EniId(3), 1)]);
        assert_eq!(t.take_skipped(), vec![]);
    }
}
