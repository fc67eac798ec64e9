//! Per-core counters: plain integers owned by one core, summed by whoever reads them.

use crate::pipeline::{DropReason, Hop, Verdict};
use crate::tables::EniId;
use crate::wire::Malformed;

/// Counters of one ENI, as the ENA driver names its allowances. Bytes are IP bytes
/// (header included, Ethernet not), as flow logs count them.
///
/// They add up to what the ENI's flow log reports (TrafficType ALL, every record
/// kept): `out_*` = ACCEPT egress (every packet that passed the ENI's own egress
/// hops: forwarded, or refused later at the destination's ingress NACL or security
/// group), `in_*` = ACCEPT ingress (delivered to the ENI), `rejected_out*` = REJECT
/// egress (refused by the ENI's security groups or its subnet's NACL on the way
/// out), `rejected_in*` = REJECT ingress (refused on the way in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EniCounters {
    /// Packets that left the ENI (passed its egress hops).
    pub out_packets: u64,
    pub out_bytes: u64,
    /// Packets delivered to the ENI.
    pub in_packets: u64,
    pub in_bytes: u64,
    /// Packets from the ENI refused on the way out, and their bytes.
    pub rejected_out: u64,
    pub rejected_out_bytes: u64,
    /// Packets to the ENI refused on the way in, and their bytes.
    pub rejected_in: u64,
    pub rejected_in_bytes: u64,
    pub conntrack_allowance_exceeded: u64,
    pub srcdst_check_dropped: u64,
}

impl EniCounters {
    pub fn add(&mut self, o: &EniCounters) {
        self.out_packets += o.out_packets;
        self.out_bytes += o.out_bytes;
        self.in_packets += o.in_packets;
        self.in_bytes += o.in_bytes;
        self.rejected_out += o.rejected_out;
        self.rejected_out_bytes += o.rejected_out_bytes;
        self.rejected_in += o.rejected_in;
        self.rejected_in_bytes += o.rejected_in_bytes;
        self.conntrack_allowance_exceeded += o.conntrack_allowance_exceeded;
        self.srcdst_check_dropped += o.srcdst_check_dropped;
    }

    /// Counts a packet that left the ENI (`OutPackets`: the flow log's ACCEPT egress).
    #[inline]
    pub fn sent(&mut self, bytes: u64) {
        self.out_packets += 1;
        self.out_bytes += bytes;
    }

    /// Counts a packet delivered to the ENI.
    #[inline]
    pub fn received(&mut self, bytes: u64) {
        self.in_packets += 1;
        self.in_bytes += bytes;
    }

    /// Counts a packet refused on the way out (`egress`) or in.
    #[inline]
    pub fn reject(&mut self, egress: bool, bytes: u64) {
        if egress {
            self.rejected_out += 1;
            self.rejected_out_bytes += bytes;
        } else {
            self.rejected_in += 1;
            self.rejected_in_bytes += bytes;
        }
    }
}

/// False only in a benchmark build made with `VPCGATE_UNCOUNTED=1` in the environment
/// (`perf/bench-counting.sh`): every per-packet counter and the top-flow sampling are
/// behind it, so that build measures the pipeline with counting compiled out. An
/// environment variable, not a cargo feature, so `--all-features` never ships it.
pub const COUNTED: bool = option_env!("VPCGATE_UNCOUNTED").is_none();

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Bytes of every frame judged (frames: [`Stats::frames`], the sum of the verdicts).
    pub bytes: u64,
    pub forwarded: u64,
    pub replied: u64,
    pub rejected: [u64; Hop::ALL.len()],
    pub dropped: [u64; DropReason::KINDS.len()],
    pub malformed: [u64; Malformed::ALL.len()],
    /// Packets judged untracked (re-evaluated every time, no conntrack entry).
    pub untracked: u64,
    /// Frames that carried out a cached decision (see `flowcache`).
    pub flow_cache_hits: u64,
    pub per_eni: Vec<EniCounters>,
}

impl Stats {
    pub fn ensure_enis(&mut self, n: usize) {
        if self.per_eni.len() < n {
            self.per_eni.resize(n, EniCounters::default());
        }
    }

    #[inline]
    pub fn eni(&mut self, e: EniId) -> Option<&mut EniCounters> {
        if !COUNTED {
            return None;
        }
        self.per_eni.get_mut(e.0 as usize)
    }

    #[inline]
    pub fn count(&mut self, v: Verdict, bytes: usize) {
        if !COUNTED {
            return;
        }
        self.bytes += bytes as u64;
        match v {
            Verdict::Forward(_) => self.forwarded += 1,
            Verdict::Reply => self.replied += 1,
            Verdict::Reject(h) => self.rejected[h as usize] += 1,
            Verdict::Drop(r) => {
                self.dropped[r.kind_index()] += 1;
                if let DropReason::Malformed(m) = r {
                    self.malformed[m as usize] += 1;
                }
            }
        }
    }

    #[inline]
    pub fn count_untracked(&mut self, hops: u8) {
        if COUNTED {
            self.untracked += hops as u64;
        }
    }

    #[inline]
    pub fn count_flow_cache_hit(&mut self) {
        if COUNTED {
            self.flow_cache_hits += 1;
        }
    }

    /// Frames judged: each gets exactly one verdict, so they are the verdicts' sum
    /// (one increment a frame fewer on the hot path).
    pub fn frames(&self) -> u64 {
        self.forwarded + self.replied + self.rejected.iter().sum::<u64>() + self.dropped.iter().sum::<u64>()
    }

    pub fn dropped_by(&self, r: DropReason) -> u64 {
        self.dropped[r.kind_index()]
    }

    pub fn add(&mut self, o: &Stats) {
        self.bytes += o.bytes;
        self.forwarded += o.forwarded;
        self.replied += o.replied;
        self.untracked += o.untracked;
        self.flow_cache_hits += o.flow_cache_hits;
        for (a, b) in self.rejected.iter_mut().zip(o.rejected) {
            *a += b;
        }
        for (a, b) in self.dropped.iter_mut().zip(o.dropped) {
            *a += b;
        }
        for (a, b) in self.malformed.iter_mut().zip(o.malformed) {
            *a += b;
        }
        self.ensure_enis(o.per_eni.len());
        for (a, b) in self.per_eni.iter_mut().zip(&o.per_eni) {
            a.add(b);
        }
    }
}
