//! Top flows: the heaviest flow directions on this core, for `vpcgate top` and the
//! `TopFlows` of `DescribeStats`.
//!
//! Counting every packet into a flow table would cost a hash probe per packet, so the
//! core samples 1 in `every` policy decisions into a small fixed table and weights
//! each sample by `every`, the way sFlow finds heavy hitters. `every` is retuned once a
//! second from the packet rate: while the core sees fewer than
//! [`SAMPLES_PER_SEC`] decisions a second it is 1 and the counts are exact; above that
//! they are estimates (reported with the rate, so readers can say so).

use crate::accounting::FlowId;
use crate::conntrack::Nanos;
use crate::pipeline::Hop;

/// Table slots (a power of two), in buckets of [`WAYS`].
pub const SLOTS: usize = 1024;
const WAYS: usize = 4;
/// Samples a second the table takes at most (about), whatever the packet rate.
pub const SAMPLES_PER_SEC: u64 = 16_384;
/// A flow not sampled for this long is no longer reported and its slot is reused first.
pub const IDLE: Nanos = 10_000_000_000;

/// One flow direction at one ENI, as this core sampled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSample {
    /// ENI, direction at that ENI, action, addresses, protocol and ports.
    pub id: FlowId,
    /// For a refused flow (`id.accept == false`), the hop that refused it.
    pub rejected_at: Option<Hop>,
    /// Counted since the flow took its slot (monotonic while it keeps it: a reader
    /// that sees a count go down knows the flow was evicted and came back).
    pub packets: u64,
    pub bytes: u64,
    pub last_seen: Nanos,
}

pub struct TopFlows {
    slots: Box<[Option<FlowSample>]>,
    /// Sample one decision in `every`; `countdown` decisions to the next sample.
    every: u32,
    countdown: u32,
    /// When the last retune was, and `countdown` just after it: the decisions since
    /// are `samples * every + countdown_at_retune - countdown`, so no per-decision
    /// counter is needed.
    retuned_at: Nanos,
    countdown_at_retune: u32,
    /// Samples taken since the last retune: a burst retunes early, after
    /// [`RETUNE_AFTER`] samples, instead of sampling every packet for a second.
    samples: u32,
    /// When the first of those samples was taken: a burst is told by how fast the
    /// samples came, not by how long ago the last retune was (traffic that starts
    /// after a quiet spell is a burst too).
    first_sample_at: Nanos,
}

const RETUNE_AFTER: u32 = 1024;
/// The time [`RETUNE_AFTER`] samples take at [`SAMPLES_PER_SEC`]; faster is a burst.
const BURST: Nanos = RETUNE_AFTER as u64 * 1_000_000_000 / SAMPLES_PER_SEC;

impl Default for TopFlows {
    fn default() -> Self {
        TopFlows::new()
    }
}

impl TopFlows {
    pub fn new() -> TopFlows {
        TopFlows {
            slots: vec![None; SLOTS].into_boxed_slice(),
            every: 1,
            countdown: 1,
            retuned_at: 0,
            countdown_at_retune: 1,
            samples: 0,
            first_sample_at: 0,
        }
    }

    /// Called for every policy decision; true when this one is to be sampled.
    #[inline]
    pub fn tick(&mut self, now: Nanos) -> bool {
        if !crate::stats::COUNTED {
            return false;
        }
        self.countdown -= 1;
        if self.countdown != 0 {
            return false;
        }
        self.countdown = self.every;
        self.samples += 1;
        if self.samples == 1 {
            self.first_sample_at = now;
        }
        if self.samples >= RETUNE_AFTER && now.saturating_sub(self.first_sample_at) < BURST {
            self.retune(now);
        }
        true
    }

    /// The current sampling rate (1 = every decision counted).
    pub fn every(&self) -> u32 {
        self.every
    }

    /// Adjusts `every` to the decision rate since the last call (about once a second).
    pub fn retune(&mut self, now: Nanos) {
        let elapsed = now.saturating_sub(self.retuned_at);
        if self.retuned_at != 0 && elapsed > 0 {
            let decisions =
                self.samples as u64 * self.every as u64 + self.countdown_at_retune as u64 - self.countdown as u64;
            let per_sec = decisions as u128 * 1_000_000_000 / elapsed as u128;
            let wanted = (per_sec as u64).div_ceil(SAMPLES_PER_SEC).max(1);
            self.every = wanted.next_power_of_two().min(1 << 16) as u32;
            self.countdown = self.countdown.min(self.every);
        }
        self.countdown_at_retune = self.countdown;
        self.retuned_at = now;
        self.samples = 0;
    }

    /// Counts a sampled packet of `bytes` to `id`, weighted by the sampling rate.
    pub fn record(&mut self, id: &FlowId, rejected_at: Option<Hop>, bytes: u64, now: Nanos) {
        let weight = self.every as u64;
        let bucket = (id.hash() as usize & (SLOTS / WAYS - 1)) * WAYS;
        let ways = &mut self.slots[bucket..bucket + WAYS];
        if let Some(s) = ways.iter_mut().flatten().find(|s| s.id == *id) {
            s.packets += weight;
            s.bytes += bytes * weight;
            s.last_seen = now;
            s.rejected_at = rejected_at;
            return;
        }
        // An empty slot, else the one idle longest if idle, else the lightest: heavy
        // flows keep their slots, a burst of one-packet flows churns the light ones.
        let victim = ways
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| match s {
                None => (0, 0),
                Some(s) if now.saturating_sub(s.last_seen) > IDLE => (1, s.last_seen),
                Some(s) => (2, s.packets),
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        ways[victim] =
            Some(FlowSample { id: *id, rejected_at, packets: weight, bytes: bytes * weight, last_seen: now });
    }

    /// The flows sampled within the last [`IDLE`] before `now`.
    pub fn samples(&self, now: Nanos) -> Vec<FlowSample> {
        self.slots.iter().flatten().filter(|s| now.saturating_sub(s.last_seen) <= IDLE).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Family;
    use crate::tables::EniId;

    fn flow(n: u32) -> FlowId {
        FlowId {
            eni: EniId(n % 3),
            egress: n.is_multiple_of(2),
            accept: true,
            to_uplink: false,
            family: Family::V4,
            proto: 6,
            src: 0xc612_0000 + n as u128,
            dst: 0xc612_0100,
            sport: 40_000 + (n % 1000) as u16,
            dport: 443,
        }
    }

    #[test]
    fn quiet_core_counts_exactly() {
        let mut t = TopFlows::new();
        for i in 0..1000u64 {
            assert!(t.tick(i));
            t.record(&flow((i % 5) as u32), None, 100, i);
        }
        let s = t.samples(1000);
        assert_eq!(s.len(), 5);
        assert!(s.iter().all(|s| s.packets == 200 && s.bytes == 20_000));
    }

    #[test]
    fn busy_core_samples_and_weights() {
        let mut t = TopFlows::new();
        t.retune(1);
        // 1 M decisions a second: a burst retune after the first 1024 samples, then steady.
        for i in 0..1_000_000 {
            t.tick(1 + i * 1000);
        }
        t.retune(1_000_000_001);
        assert_eq!(t.every(), 64, "1 M decisions/s over 16 k samples/s, rounded up to a power of two");
        let sampled = (0..6400).filter(|_| t.tick(1_000_000_002)).count();
        assert_eq!(sampled, 100);
        t.record(&flow(1), None, 64, 2_000_000_000);
        assert_eq!(t.samples(2_000_000_000)[0].packets, 64);
        assert_eq!(t.samples(2_000_000_000)[0].bytes, 64 * 64);
        // Quiet again: back to exact counting.
        t.retune(3_000_000_000);
        assert_eq!(t.every(), 1);
    }

    #[test]
    fn a_burst_retunes_within_a_thousand_samples() {
        let mut t = TopFlows::new();
        t.retune(1);
        // 10 M decisions in 10 ms of appliance time: 1 G/s.
        let sampled = (0..10_000_000u64).filter(|i| t.tick(1 + i)).count();
        assert!(sampled < 20_000, "{sampled} samples");
        assert!(t.every() >= 1 << 14, "every {}", t.every());
    }

    #[test]
    fn a_burst_after_a_quiet_spell_retunes_too() {
        let mut t = TopFlows::new();
        t.retune(1);
        // Ten quiet seconds, then 10 M decisions in 10 ms. The first retune sees the
        // quiet seconds in its rate; the next one, 1024 samples later, the burst's.
        let start = 10_000_000_001;
        let sampled = (0..10_000_000u64).filter(|i| t.tick(start + i)).count();
        assert!(sampled < 20_000, "{sampled} samples");
        assert!(t.every() >= 1 << 14, "every {}", t.every());
    }

    #[test]
    fn heavy_flows_keep_their_slots_under_churn() {
        let mut t = TopFlows::new();
        let heavy: Vec<FlowId> = (0..50).map(|i| flow(i * 7919)).collect();
        for round in 0..200u64 {
            for h in &heavy {
                t.record(h, None, 1500, round);
            }
            // A scan of one-packet flows between rounds.
            for j in 0..100u32 {
                t.record(&flow(1_000_000 + round as u32 * 100 + j), None, 60, round);
            }
        }
        let s = t.samples(200);
        for h in &heavy {
            let got = s.iter().find(|s| s.id == *h).expect("heavy flow kept");
            assert!(got.packets >= 150, "{got:?}");
        }
        assert!(s.len() <= SLOTS);
    }

    #[test]
    fn idle_flows_age_out() {
        let mut t = TopFlows::new();
        t.record(&flow(1), Some(Hop::NaclIngress), 60, 0);
        assert_eq!(t.samples(IDLE).len(), 1);
        assert_eq!(t.samples(IDLE + 1).len(), 0);
    }
}
