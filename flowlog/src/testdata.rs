//! Records for unit tests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::record::{Action, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};

pub(crate) fn eni(interface_id: &str, account_id: &str, region: &str) -> Arc<EniMeta> {
    Arc::new(EniMeta {
        interface_id: interface_id.into(),
        account_id: account_id.into(),
        vpc_id: "vpc-0123456789abcdef0".into(),
        subnet_id: "subnet-0123456789abcdef0".into(),
        instance_id: Some("i-0123456789abcdef0".into()),
        region: region.into(),
        az_id: Some("use1-az1".into()),
        primary_ipv4: Some(Ipv4Addr::new(10, 0, 1, 5)),
    })
}

/// An ACCEPTed TCP record at ENI `eni-0a1b2c3d`; `i` varies the source port and counts.
pub(crate) fn record(i: u64, start: u64, end: u64) -> FlowRecord {
    let remote = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let local = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 5));
    FlowRecord {
        eni: eni("eni-0a1b2c3d", "123456789012", "us-east-1"),
        start,
        end,
        log_status: LogStatus::Ok,
        traffic: Some(Traffic {
            srcaddr: remote,
            dstaddr: local,
            pkt_srcaddr: remote,
            pkt_dstaddr: local,
            srcport: 40_000 + (i % 20_000) as u16,
            dstport: 443,
            protocol: 6,
            packets: 1 + i,
            bytes: 60 * (1 + i),
            action: Action::Accept,
            tcp_flags: Some(19),
            direction: FlowDirection::Ingress,
            traffic_path: None,
            pkt_src_aws_service: None,
            pkt_dst_aws_service: None,
        }),
    }
}

/// A record whose addresses and counts vary a lot with `i`, so that it compresses
/// about as badly as real traffic.
pub(crate) fn noisy_record(i: u64, end: u64) -> FlowRecord {
    let mut r = record(i, end - 30, end);
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let t = r.traffic.as_mut().expect("record() has traffic");
    t.srcaddr = IpAddr::V4(Ipv4Addr::from((h >> 32) as u32));
    t.pkt_srcaddr = t.srcaddr;
    t.srcport = h as u16;
    t.dstport = (h >> 16) as u16;
    t.packets = h >> 44;
    t.bytes = h >> 30;
    r
}
