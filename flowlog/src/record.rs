//! One VPC Flow Log record: one 5-tuple at one ENI in one direction during one
//! aggregation interval (or a NODATA / SKIPDATA record for an ENI).

use std::net::IpAddr;
use std::sync::Arc;

/// What a record says about the ENI it belongs to. Shared by all its records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EniMeta {
    pub interface_id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// `None` for ENIs not attached to an instance (printed `-`).
    pub instance_id: Option<String>,
    pub region: String,
    pub az_id: Option<String>,
    /// The ENI's primary private IPv4 (what srcaddr/dstaddr show for the ENI side).
    pub primary_ipv4: Option<std::net::Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStatus {
    Ok,
    NoData,
    SkipData,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowDirection {
    Ingress,
    Egress,
}

impl FlowDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowDirection::Ingress => "ingress",
            FlowDirection::Egress => "egress",
        }
    }
}

/// The traffic of one flow in one interval. `None` fields print as `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// As the record shows them (the ENI side is its primary private IPv4).
    pub srcaddr: IpAddr,
    pub dstaddr: IpAddr,
    /// The packet's real addresses (`pkt-srcaddr`, `pkt-dstaddr`).
    pub pkt_srcaddr: IpAddr,
    pub pkt_dstaddr: IpAddr,
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    pub action: Action,
    /// OR of FIN=1, SYN=2, RST=4, SYN-ACK=18 over the interval; `None` prints `-`.
    pub tcp_flags: Option<u8>,
    pub direction: FlowDirection,
    /// Egress only: 1 = to another resource in the VPC, 2 = through the internet gateway.
    pub traffic_path: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub eni: Arc<EniMeta>,
    /// Unix seconds of the first and last packet in the interval (for NODATA and
    /// SKIPDATA: the interval's bounds).
    pub start: u64,
    pub end: u64,
    pub log_status: LogStatus,
    /// `None` for NODATA and SKIPDATA records.
    pub traffic: Option<Traffic>,
}

impl FlowRecord {
    pub fn is_ipv6(&self) -> bool {
        self.traffic.as_ref().is_some_and(|t| t.pkt_srcaddr.is_ipv6())
    }
}
