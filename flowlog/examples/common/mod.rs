//! Deterministic flow records for the examples: no randomness source, so every run
//! (and every machine) writes the same records.

#![allow(dead_code)] // each example uses part of this

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use flowlog::{Action, AwsService, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};

/// A small linear congruential generator (Knuth's MMIX constants).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 16
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn eni(id: &str, account: &str, region: &str, az: &str, instance: Option<&str>, ip: [u8; 4]) -> Arc<EniMeta> {
    Arc::new(EniMeta {
        interface_id: id.into(),
        account_id: account.into(),
        vpc_id: format!("vpc-{}", &id[4..]),
        subnet_id: format!("subnet-{}", &id[4..]),
        instance_id: instance.map(Into::into),
        region: region.into(),
        az_id: Some(az.into()),
        primary_ipv4: Some(Ipv4Addr::from(ip)),
    })
}

pub fn enis() -> Vec<Arc<EniMeta>> {
    vec![
        eni(
            "eni-0a1111111111111a1",
            "111122223333",
            "us-east-1",
            "use1-az1",
            Some("i-0a1111111111111a1"),
            [10, 0, 1, 10],
        ),
        // Requester-managed (a NAT gateway's ENI): no instance.
        eni("eni-0b2222222222222b2", "111122223333", "us-east-1", "use1-az2", None, [10, 0, 2, 20]),
        eni(
            "eni-0c3333333333333c3",
            "444455556666",
            "eu-west-1",
            "euw1-az3",
            Some("i-0c3333333333333c3"),
            [10, 1, 3, 30],
        ),
    ]
}

/// One flow at `eni` during `[start, end]`.
#[allow(clippy::too_many_arguments)]
fn traffic_record(
    eni: &Arc<EniMeta>,
    start: u64,
    end: u64,
    remote: IpAddr,
    local6: Option<Ipv6Addr>,
    direction: FlowDirection,
    protocol: u8,
    ports: (u16, u16),
    counts: (u64, u64),
    action: Action,
    tcp_flags: Option<u8>,
    remote_service: Option<AwsService>,
) -> FlowRecord {
    let local = match local6 {
        Some(v6) => IpAddr::V6(v6),
        None => IpAddr::V4(eni.primary_ipv4.expect("sample ENIs have an IPv4")),
    };
    let (src, dst, srcport, dstport) = match direction {
        FlowDirection::Ingress => (remote, local, ports.0, ports.1),
        FlowDirection::Egress => (local, remote, ports.1, ports.0),
    };
    let egress = direction == FlowDirection::Egress;
    let remote_in_vpc = matches!(remote, IpAddr::V4(v4) if v4.octets()[0] == 10);
    FlowRecord {
        eni: eni.clone(),
        start,
        end,
        log_status: LogStatus::Ok,
        traffic: Some(Traffic {
            srcaddr: src,
            dstaddr: dst,
            pkt_srcaddr: src,
            pkt_dstaddr: dst,
            srcport,
            dstport,
            protocol,
            packets: counts.0,
            bytes: counts.1,
            action,
            tcp_flags,
            direction,
            traffic_path: egress.then_some(if remote_in_vpc { 1 } else { 8 }),
            pkt_src_aws_service: if egress { None } else { remote_service },
            pkt_dst_aws_service: if egress { remote_service } else { None },
        }),
    }
}

/// The records of one aggregation interval `[start, start + 60)` for every ENI, in
/// the order the dataplane would hand them over.
pub fn interval(rng: &mut Lcg, enis: &[Arc<EniMeta>], start: u64, index: u64) -> Vec<FlowRecord> {
    let end_max = start + 59;
    let mut out = Vec::new();
    for (e, eni) in enis.iter().enumerate() {
        // Some intervals are quiet (NODATA) or overloaded (SKIPDATA), as AWS reports them.
        if (index + e as u64) % 11 == 7 {
            let status = if e == 2 { LogStatus::SkipData } else { LogStatus::NoData };
            out.push(FlowRecord { eni: eni.clone(), start, end: end_max, log_status: status, traffic: None });
            continue;
        }
        let flows = 3 + rng.below(6);
        for f in 0..flows {
            let a = start + rng.below(30);
            let b = (a + rng.below(30)).min(end_max);
            let kind = (rng.below(10) + f) % 10;
            let packets = 1 + rng.below(5000);
            let bytes = packets * (40 + rng.below(1400));
            let eph = 32768 + rng.below(28000) as u16;
            let v4 = |rng: &mut Lcg| IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + rng.below(250) as u8));
            let rec = match kind {
                // HTTPS from the internet, accepted.
                0..=2 => traffic_record(
                    eni,
                    a,
                    b,
                    v4(rng),
                    None,
                    FlowDirection::Ingress,
                    6,
                    (eph, 443),
                    (packets, bytes),
                    Action::Accept,
                    Some(19),
                    None,
                ),
                // Egress to S3, accepted.
                3 => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V4(Ipv4Addr::new(52, 216, 8, 1 + rng.below(200) as u8)),
                    None,
                    FlowDirection::Egress,
                    6,
                    (443, eph),
                    (packets, bytes),
                    Action::Accept,
                    Some(3),
                    Some(AwsService::S3),
                ),
                // SSH probe, rejected by a security group.
                4 => traffic_record(
                    eni,
                    a,
                    b,
                    v4(rng),
                    None,
                    FlowDirection::Ingress,
                    6,
                    (eph, 22),
                    (1 + rng.below(3), 60),
                    Action::Reject,
                    Some(2),
                    None,
                ),
                // IPv6 HTTPS, accepted.
                5 => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + rng.below(999) as u16)),
                    Some(Ipv6Addr::new(0x2600, 0x1f18, 0, 0, 0, 0, 0, 0x10 + e as u16)),
                    FlowDirection::Ingress,
                    6,
                    (eph, 443),
                    (packets, bytes),
                    Action::Accept,
                    Some(18),
                    None,
                ),
                // IPv6 UDP, rejected by a network ACL.
                6 => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xff, 1 + rng.below(99) as u16)),
                    Some(Ipv6Addr::new(0x2600, 0x1f18, 0, 0, 0, 0, 0, 0x10 + e as u16)),
                    FlowDirection::Ingress,
                    17,
                    (eph, 5353),
                    (packets.min(20), bytes.min(20 * 1400)),
                    Action::Reject,
                    None,
                    None,
                ),
                // DNS to a resolver in the VPC.
                7 => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
                    None,
                    FlowDirection::Egress,
                    17,
                    (53, eph),
                    (2, 150),
                    Action::Accept,
                    None,
                    None,
                ),
                // Ping from a neighbour.
                8 => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V4(Ipv4Addr::new(10, 0, 9, 9)),
                    None,
                    FlowDirection::Ingress,
                    1,
                    (0, 0),
                    (4, 336),
                    Action::Accept,
                    None,
                    None,
                ),
                // CloudFront pulling from the instance, accepted.
                _ => traffic_record(
                    eni,
                    a,
                    b,
                    IpAddr::V4(Ipv4Addr::new(130, 176, 0, 1 + rng.below(250) as u8)),
                    None,
                    FlowDirection::Ingress,
                    6,
                    (eph, 80),
                    (packets, bytes),
                    Action::Accept,
                    Some(1),
                    Some(AwsService::Cloudfront),
                ),
            };
            out.push(rec);
        }
    }
    out
}

/// `n` records of the sample's mix, for benchmarks: intervals of 60 s from `start`.
pub fn many(n: usize, start: u64) -> Vec<FlowRecord> {
    let enis = enis();
    let mut rng = Lcg::new(7);
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0;
    while out.len() < n {
        out.extend(interval(&mut rng, &enis, start + 60 * i, i));
        i += 1;
    }
    out.truncate(n);
    out
}
