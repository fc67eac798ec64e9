//! From worker records to flow-log deliveries. Workers hand over records of short
//! intervals (the shortest aggregation interval of any flow log), several workers for
//! the same flow; each flow log gathers them into its own windows
//! (`MaxAggregationInterval`), merges records of the same flow, keeps what its
//! `TrafficType` and sampling select, adds a NODATA record for each covered ENI
//! that had no traffic in the window, and writes the window to its sink when it
//! closes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use crate::record::{Action, EniMeta, FlowDirection, FlowRecord, LogStatus};
use crate::sink::{Sink, SinkStats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficType {
    Accept,
    Reject,
    All,
}

impl TrafficType {
    pub fn parse(s: &str) -> Option<TrafficType> {
        match s {
            "ACCEPT" => Some(TrafficType::Accept),
            "REJECT" => Some(TrafficType::Reject),
            "ALL" => Some(TrafficType::All),
            _ => None,
        }
    }
    fn keeps(self, a: Action) -> bool {
        matches!(
            (self, a),
            (TrafficType::All, _) | (TrafficType::Accept, Action::Accept) | (TrafficType::Reject, Action::Reject)
        )
    }
}

/// What a flow log selects.
#[derive(Clone, Debug)]
pub struct FlowLogSpec {
    pub id: String,
    /// Interface ids of the ENIs it covers (the ENI, its subnet's or its VPC's).
    pub enis: HashSet<String>,
    pub traffic: TrafficType,
    /// `MaxAggregationInterval`, seconds.
    pub interval: u64,
    /// Keep one flow in this many (by a hash of the flow), 1 = all.
    pub sample_one_in: u32,
}

/// One flow direction at one ENI, as records are merged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    eni: String,
    direction: FlowDirection,
    action: Action,
    src: IpAddr,
    dst: IpAddr,
    pkt_src: IpAddr,
    pkt_dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
}

fn key(r: &FlowRecord) -> Option<FlowKey> {
    let t = r.traffic.as_ref()?;
    Some(FlowKey {
        eni: r.eni.interface_id.clone(),
        direction: t.direction,
        action: t.action,
        src: t.srcaddr,
        dst: t.dstaddr,
        pkt_src: t.pkt_srcaddr,
        pkt_dst: t.pkt_dstaddr,
        sport: t.srcport,
        dport: t.dstport,
        proto: t.protocol,
    })
}

/// FNV-1a over the flow's identity: the sampling decision, stable for a flow.
fn flow_hash(k: &FlowKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(k.eni.as_bytes());
    // Both directions of a connection sample alike: order the endpoints.
    let (a, b) = if (k.pkt_src, k.sport) <= (k.pkt_dst, k.dport) {
        ((k.pkt_src, k.sport), (k.pkt_dst, k.dport))
    } else {
        ((k.pkt_dst, k.dport), (k.pkt_src, k.sport))
    };
    eat(a.0.to_string().as_bytes());
    eat(&a.1.to_be_bytes());
    eat(b.0.to_string().as_bytes());
    eat(&b.1.to_be_bytes());
    eat(&[k.proto]);
    h
}

#[derive(Default)]
struct Window {
    flows: HashMap<FlowKey, FlowRecord>,
    /// SKIPDATA records, one per ENI.
    skipped: HashMap<String, FlowRecord>,
    /// ENIs with any record in the window (no NODATA for them).
    active: HashSet<String>,
}

struct Log {
    spec: FlowLogSpec,
    sink: Box<dyn Sink + Send>,
    windows: BTreeMap<u64, Window>,
    /// Start of the first window not yet written.
    next: Option<u64>,
    written: u64,
    skipped_records: u64,
    last_error: Option<String>,
}

/// Delivery counters of one flow log.
#[derive(Clone, Debug, Default)]
pub struct LogStats {
    pub flow_log_id: String,
    pub sink: SinkStats,
    /// Records handed to the sink (incl. NODATA/SKIPDATA).
    pub written: u64,
    /// SKIPDATA records written (records the workers could not keep).
    pub skipped_records: u64,
    pub last_error: Option<String>,
}

pub struct Aggregator {
    logs: Vec<Log>,
    /// What NODATA records say about each ENI.
    metas: HashMap<String, Arc<EniMeta>>,
}

impl Aggregator {
    pub fn new(logs: Vec<(FlowLogSpec, Box<dyn Sink + Send>)>, metas: Vec<Arc<EniMeta>>) -> Aggregator {
        Aggregator {
            logs: logs
                .into_iter()
                .map(|(spec, sink)| Log {
                    spec,
                    sink,
                    windows: BTreeMap::new(),
                    next: None,
                    written: 0,
                    skipped_records: 0,
                    last_error: None,
                })
                .collect(),
            metas: metas.into_iter().map(|m| (m.interface_id.clone(), m)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Takes worker records (any interval, any order within open windows).
    pub fn add(&mut self, records: &[FlowRecord]) {
        for r in records {
            for log in self.logs.iter_mut().filter(|l| l.spec.enis.contains(&r.eni.interface_id)) {
                let iv = log.spec.interval.max(1);
                let w = r.start - r.start % iv;
                // A window already written takes no more records: they go to the
                // oldest open one (AWS: a record may come up to an interval late).
                let w = match log.next {
                    Some(next) if w < next => next,
                    _ => w,
                };
                let window = log.windows.entry(w).or_default();
                window.active.insert(r.eni.interface_id.clone());
                match (r.log_status, key(r)) {
                    (LogStatus::SkipData, _) => {
                        window.skipped.entry(r.eni.interface_id.clone()).or_insert_with(|| FlowRecord {
                            start: w,
                            end: w + iv - 1,
                            ..r.clone()
                        });
                    }
                    (_, Some(k)) => {
                        let (Some(t), true) = (r.traffic.as_ref(), log.spec.traffic.keeps(k.action)) else { continue };
                        if log.spec.sample_one_in > 1 && !flow_hash(&k).is_multiple_of(log.spec.sample_one_in as u64) {
                            continue;
                        }
                        match window.flows.get_mut(&k) {
                            Some(m) => {
                                let mt = m.traffic.as_mut().expect("flow records carry traffic");
                                mt.packets += t.packets;
                                mt.bytes += t.bytes;
                                mt.tcp_flags = match (mt.tcp_flags, t.tcp_flags) {
                                    (Some(a), Some(b)) => Some(a | b),
                                    (a, b) => a.or(b),
                                };
                                m.start = m.start.min(r.start);
                                m.end = m.end.max(r.end);
                            }
                            None => {
                                window.flows.insert(k, r.clone());
                            }
                        }
                    }
                    (_, None) => {}
                }
            }
        }
    }

    /// Writes every window that ended at or before `now_unix` (and NODATA for ENIs
    /// that were silent in it), then lets the sinks rotate. Errors are counted and
    /// reported; the next call tries again.
    pub fn close_through(&mut self, now_unix: u64) -> io::Result<()> {
        let mut first_error = None;
        for log in &mut self.logs {
            let iv = log.spec.interval.max(1);
            let start =
                *log.next.get_or_insert_with(|| log.windows.keys().next().copied().unwrap_or(now_unix - now_unix % iv));
            let mut w = start;
            while w + iv <= now_unix {
                let window = log.windows.remove(&w).unwrap_or_default();
                let mut flows: Vec<(FlowKey, FlowRecord)> = window.flows.into_iter().collect();
                // A stable order: by first packet, then ENI and flow.
                flows.sort_by(|(ka, a), (kb, b)| {
                    (a.start, &ka.eni, ka.pkt_src, ka.pkt_dst, ka.sport, ka.dport, ka.proto, ka.action as u8).cmp(&(
                        b.start,
                        &kb.eni,
                        kb.pkt_src,
                        kb.pkt_dst,
                        kb.sport,
                        kb.dport,
                        kb.proto,
                        kb.action as u8,
                    ))
                });
                let mut out: Vec<FlowRecord> = flows.into_iter().map(|(_, r)| r).collect();
                log.skipped_records += window.skipped.len() as u64;
                out.extend(window.skipped.into_values());
                let mut silent: Vec<&String> = log.spec.enis.iter().filter(|e| !window.active.contains(*e)).collect();
                silent.sort();
                for eni in silent {
                    if let Some(meta) = self.metas.get(eni) {
                        out.push(FlowRecord {
                            eni: meta.clone(),
                            start: w,
                            end: w + iv - 1,
                            log_status: LogStatus::NoData,
                            traffic: None,
                        });
                    }
                }
                log.written += out.len() as u64;
                if let Err(e) = log.sink.write(&out) {
                    log.last_error = Some(e.to_string());
                    first_error.get_or_insert(e);
                }
                w += iv;
            }
            log.next = Some(w);
            if let Err(e) = log.sink.rotate_if_due(now_unix) {
                log.last_error = Some(e.to_string());
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes every open window (the end of a replay, a shutdown) and closes the
    /// sinks, publishing their files.
    pub fn finish(&mut self) -> io::Result<()> {
        let end = self
            .logs
            .iter()
            .filter_map(|l| l.windows.keys().next_back().map(|w| w + l.spec.interval.max(1)))
            .max()
            .unwrap_or(0);
        let mut result = if end > 0 { self.close_through(end) } else { Ok(()) };
        for log in &mut self.logs {
            if let Err(e) = log.sink.close() {
                log.last_error = Some(e.to_string());
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    pub fn stats(&self) -> Vec<LogStats> {
        self.logs
            .iter()
            .map(|l| LogStats {
                flow_log_id: l.spec.id.clone(),
                sink: l.sink.stats(),
                written: l.written,
                skipped_records: l.skipped_records,
                last_error: l.last_error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Traffic;
    use std::sync::Mutex;

    /// A sink that keeps what it is given, for tests.
    struct Keep(Arc<Mutex<Vec<FlowRecord>>>);

    impl Sink for Keep {
        fn write(&mut self, records: &[FlowRecord]) -> io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(records);
            Ok(())
        }
        fn rotate_if_due(&mut self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn close(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn stats(&self) -> SinkStats {
            SinkStats::default()
        }
    }

    fn meta(id: &str) -> Arc<EniMeta> {
        Arc::new(EniMeta {
            interface_id: id.into(),
            account_id: "123456789012".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            instance_id: None,
            region: "us-east-1".into(),
            az_id: None,
            primary_ipv4: None,
        })
    }

    fn rec(eni: &Arc<EniMeta>, start: u64, action: Action, sport: u16, packets: u64) -> FlowRecord {
        let a: IpAddr = "198.18.1.10".parse().unwrap();
        let b: IpAddr = "198.19.0.10".parse().unwrap();
        FlowRecord {
            eni: eni.clone(),
            start,
            end: start + 1,
            log_status: LogStatus::Ok,
            traffic: Some(Traffic {
                srcaddr: b,
                dstaddr: a,
                pkt_srcaddr: b,
                pkt_dstaddr: a,
                srcport: sport,
                dstport: 80,
                protocol: 6,
                packets,
                bytes: packets * 60,
                action,
                tcp_flags: Some(2),
                direction: FlowDirection::Ingress,
                traffic_path: None,
                pkt_src_aws_service: None,
                pkt_dst_aws_service: None,
            }),
        }
    }

    fn aggregator(traffic: TrafficType, interval: u64, enis: &[&str]) -> (Aggregator, Arc<Mutex<Vec<FlowRecord>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let spec = FlowLogSpec {
            id: "fl-1".into(),
            enis: enis.iter().map(|s| s.to_string()).collect(),
            traffic,
            interval,
            sample_one_in: 1,
        };
        let agg = Aggregator::new(vec![(spec, Box::new(Keep(got.clone())))], enis.iter().map(|e| meta(e)).collect());
        (agg, got)
    }

    #[test]
    fn merges_records_of_a_flow_across_workers_and_short_intervals() {
        let (mut agg, got) = aggregator(TrafficType::All, 60, &["eni-1"]);
        let m = meta("eni-1");
        agg.add(&[
            rec(&m, 1000, Action::Accept, 5, 2),
            rec(&m, 1010, Action::Accept, 5, 3),
            rec(&m, 1019, Action::Reject, 6, 1),
        ]);
        agg.close_through(1020).unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        let accept = got.iter().find(|r| r.traffic.as_ref().unwrap().action == Action::Accept).unwrap();
        assert_eq!((accept.start, accept.end, accept.traffic.as_ref().unwrap().packets), (1000, 1011, 5));
    }

    #[test]
    fn traffic_type_filters_and_silent_enis_get_nodata() {
        let (mut agg, got) = aggregator(TrafficType::Reject, 60, &["eni-1", "eni-2"]);
        let m = meta("eni-1");
        agg.add(&[rec(&m, 1000, Action::Accept, 5, 2), rec(&m, 1001, Action::Reject, 6, 1)]);
        agg.close_through(1020).unwrap();
        let got = got.lock().unwrap();
        let statuses: Vec<(String, LogStatus)> =
            got.iter().map(|r| (r.eni.interface_id.clone(), r.log_status)).collect();
        assert_eq!(
            statuses,
            vec![("eni-1".into(), LogStatus::Ok), ("eni-2".into(), LogStatus::NoData)],
            "one REJECT record, and NODATA for the silent ENI (eni-1 had traffic, even if not selected)"
        );
        assert_eq!((got[1].start, got[1].end), (960, 1019));
    }

    #[test]
    fn every_interval_of_silence_gets_its_nodata() {
        let (mut agg, got) = aggregator(TrafficType::All, 60, &["eni-1"]);
        agg.close_through(600).unwrap();
        agg.close_through(800).unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.iter().filter(|r| r.log_status == LogStatus::NoData).count(), 3, "600, 660, 720");
    }

    #[test]
    fn sampling_keeps_whole_flows_with_exact_counts() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let spec = FlowLogSpec {
            id: "fl-1".into(),
            enis: ["eni-1".to_string()].into(),
            traffic: TrafficType::All,
            interval: 60,
            sample_one_in: 4,
        };
        let mut agg = Aggregator::new(vec![(spec, Box::new(Keep(got.clone())))], vec![meta("eni-1")]);
        let m = meta("eni-1");
        let records: Vec<FlowRecord> = (0..400u16)
            .flat_map(|p| [rec(&m, 1000, Action::Accept, p, 1), rec(&m, 1001, Action::Accept, p, 2)])
            .collect();
        agg.add(&records);
        agg.finish().unwrap();
        let got = got.lock().unwrap();
        let kept = got.iter().filter(|r| r.traffic.is_some()).count();
        assert!((50..150).contains(&kept), "about a quarter of 400 flows, got {kept}");
        assert!(
            got.iter().filter_map(|r| r.traffic.as_ref()).all(|t| t.packets == 3),
            "a kept flow keeps all its packets"
        );
    }
}
