//! The catalogue of AWS VPC Flow Log fields (spec section 4.1): each field's name in a
//! `${...}` format, its column name in Parquet and Athena, the version that introduced
//! it, its Parquet type, and how its value is taken from a [`FlowRecord`].

use std::net::IpAddr;

use crate::record::{FlowRecord, LogStatus};

/// One VPC Flow Log field, in the AWS table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Version,
    AccountId,
    InterfaceId,
    Srcaddr,
    Dstaddr,
    Srcport,
    Dstport,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    Type,
    PktSrcaddr,
    PktDstaddr,
    Region,
    AzId,
    SublocationType,
    SublocationId,
    PktSrcAwsService,
    PktDstAwsService,
    FlowDirection,
    TrafficPath,
    EcsClusterArn,
    EcsClusterName,
    EcsContainerInstanceArn,
    EcsContainerInstanceId,
    EcsContainerId,
    EcsSecondContainerId,
    EcsServiceName,
    EcsTaskDefinitionArn,
    EcsTaskArn,
    EcsTaskId,
    RejectReason,
}

/// The physical Parquet type of a field's column (spec section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetType {
    Int32,
    Int64,
    String,
}

/// A field's value in one record, before rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// Not applicable or not computed: printed `-`, a null in Parquet.
    Absent,
    Int(u64),
    Str(&'a str),
    Ip(IpAddr),
}

struct Info {
    name: &'static str,
    column: &'static str,
    version: u8,
    parquet: ParquetType,
}

const fn info(name: &'static str, column: &'static str, version: u8, parquet: ParquetType) -> Info {
    Info { name, column, version, parquet }
}

use ParquetType::{Int32, Int64, String as Str};

/// Indexed by `Field as usize`; the order is AWS's table order and must match the enum.
const CATALOGUE: [Info; Field::ALL.len()] = [
    info("version", "version", 2, Int32),
    info("account-id", "account_id", 2, Str),
    info("interface-id", "interface_id", 2, Str),
    info("srcaddr", "srcaddr", 2, Str),
    info("dstaddr", "dstaddr", 2, Str),
    info("srcport", "srcport", 2, Int32),
    info("dstport", "dstport", 2, Int32),
    info("protocol", "protocol", 2, Int32),
    info("packets", "packets", 2, Int64),
    info("bytes", "bytes", 2, Int64),
    info("start", "start", 2, Int64),
    info("end", "end", 2, Int64),
    info("action", "action", 2, Str),
    info("log-status", "log_status", 2, Str),
    info("vpc-id", "vpc_id", 3, Str),
    info("subnet-id", "subnet_id", 3, Str),
    info("instance-id", "instance_id", 3, Str),
    info("tcp-flags", "tcp_flags", 3, Int32),
    info("type", "type", 3, Str),
    info("pkt-srcaddr", "pkt_srcaddr", 3, Str),
    info("pkt-dstaddr", "pkt_dstaddr", 3, Str),
    info("region", "region", 4, Str),
    info("az-id", "az_id", 4, Str),
    info("sublocation-type", "sublocation_type", 4, Str),
    info("sublocation-id", "sublocation_id", 4, Str),
    info("pkt-src-aws-service", "pkt_src_aws_service", 5, Str),
    info("pkt-dst-aws-service", "pkt_dst_aws_service", 5, Str),
    info("flow-direction", "flow_direction", 5, Str),
    info("traffic-path", "traffic_path", 5, Int32),
    info("ecs-cluster-arn", "ecs_cluster_arn", 7, Str),
    info("ecs-cluster-name", "ecs_cluster_name", 7, Str),
    info("ecs-container-instance-arn", "ecs_container_instance_arn", 7, Str),
    info("ecs-container-instance-id", "ecs_container_instance_id", 7, Str),
    info("ecs-container-id", "ecs_container_id", 7, Str),
    info("ecs-second-container-id", "ecs_second_container_id", 7, Str),
    info("ecs-service-name", "ecs_service_name", 7, Str),
    info("ecs-task-definition-arn", "ecs_task_definition_arn", 7, Str),
    info("ecs-task-arn", "ecs_task_arn", 7, Str),
    info("ecs-task-id", "ecs_task_id", 7, Str),
    info("reject-reason", "reject_reason", 8, Str),
];

impl Field {
    /// Every field, in AWS's table order.
    pub const ALL: [Field; 40] = [
        Field::Version,
        Field::AccountId,
        Field::InterfaceId,
        Field::Srcaddr,
        Field::Dstaddr,
        Field::Srcport,
        Field::Dstport,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
        Field::VpcId,
        Field::SubnetId,
        Field::InstanceId,
        Field::TcpFlags,
        Field::Type,
        Field::PktSrcaddr,
        Field::PktDstaddr,
        Field::Region,
        Field::AzId,
        Field::SublocationType,
        Field::SublocationId,
        Field::PktSrcAwsService,
        Field::PktDstAwsService,
        Field::FlowDirection,
        Field::TrafficPath,
        Field::EcsClusterArn,
        Field::EcsClusterName,
        Field::EcsContainerInstanceArn,
        Field::EcsContainerInstanceId,
        Field::EcsContainerId,
        Field::EcsSecondContainerId,
        Field::EcsServiceName,
        Field::EcsTaskDefinitionArn,
        Field::EcsTaskArn,
        Field::EcsTaskId,
        Field::RejectReason,
    ];

    /// The 14 version-2 fields of the default format.
    pub const DEFAULT: [Field; 14] = [
        Field::Version,
        Field::AccountId,
        Field::InterfaceId,
        Field::Srcaddr,
        Field::Dstaddr,
        Field::Srcport,
        Field::Dstport,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
    ];

    fn info(self) -> &'static Info {
        &CATALOGUE[self as usize]
    }

    /// The name used in `${...}` formats and in header lines, e.g. `account-id`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The column name in Parquet files and Athena tables, e.g. `account_id`.
    pub fn column_name(self) -> &'static str {
        self.info().column
    }

    /// The flow-log version that introduced the field.
    pub fn version(self) -> u8 {
        self.info().version
    }

    pub fn parquet_type(self) -> ParquetType {
        self.info().parquet
    }

    /// Looks a field up by its `${...}` name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The field's value in `rec`; `version` is what the `version` field prints (the
    /// format's version, not the field's).
    #[inline(always)]
    pub fn value(self, rec: &FlowRecord, version: u8) -> Value<'_> {
        let eni = &*rec.eni;
        let opt_str = |s: Option<&'static str>| s.map_or(Value::Absent, Value::Str);
        // Fields that describe the ENI or the interval print for every record; fields
        // that describe traffic are `-` in NODATA and SKIPDATA records (spec 4.2).
        match self {
            Field::Version => return Value::Int(version.into()),
            Field::AccountId => return Value::Str(&eni.account_id),
            Field::InterfaceId => return Value::Str(&eni.interface_id),
            Field::Start => return Value::Int(rec.start),
            Field::End => return Value::Int(rec.end),
            Field::LogStatus => return Value::Str(rec.log_status.as_str()),
            Field::VpcId => return Value::Str(&eni.vpc_id),
            Field::SubnetId => return Value::Str(&eni.subnet_id),
            Field::InstanceId => return eni.instance_id.as_deref().map_or(Value::Absent, Value::Str),
            Field::Region => return Value::Str(&eni.region),
            Field::AzId => return eni.az_id.as_deref().map_or(Value::Absent, Value::Str),
            // vpcgate has no Wavelength/Outposts/Local Zones, no ECS, and no Block Public
            // Access, so these are never applicable.
            Field::SublocationType
            | Field::SublocationId
            | Field::EcsClusterArn
            | Field::EcsClusterName
            | Field::EcsContainerInstanceArn
            | Field::EcsContainerInstanceId
            | Field::EcsContainerId
            | Field::EcsSecondContainerId
            | Field::EcsServiceName
            | Field::EcsTaskDefinitionArn
            | Field::EcsTaskArn
            | Field::EcsTaskId
            | Field::RejectReason => return Value::Absent,
            _ => {}
        }
        let Some(t) = rec.traffic.as_ref().filter(|_| rec.log_status == LogStatus::Ok) else {
            return Value::Absent;
        };
        match self {
            Field::Srcaddr => Value::Ip(t.srcaddr),
            Field::Dstaddr => Value::Ip(t.dstaddr),
            Field::Srcport => Value::Int(t.srcport.into()),
            Field::Dstport => Value::Int(t.dstport.into()),
            Field::Protocol => Value::Int(t.protocol.into()),
            Field::Packets => Value::Int(t.packets),
            Field::Bytes => Value::Int(t.bytes),
            Field::Action => Value::Str(t.action.as_str()),
            Field::TcpFlags => t.tcp_flags.map_or(Value::Absent, |f| Value::Int(f.into())),
            Field::Type => Value::Str(if t.pkt_srcaddr.is_ipv6() { "IPv6" } else { "IPv4" }),
            Field::PktSrcaddr => Value::Ip(t.pkt_srcaddr),
            Field::PktDstaddr => Value::Ip(t.pkt_dstaddr),
            Field::PktSrcAwsService => opt_str(t.pkt_src_aws_service.map(|s| s.as_str())),
            Field::PktDstAwsService => opt_str(t.pkt_dst_aws_service.map(|s| s.as_str())),
            Field::FlowDirection => Value::Str(t.direction.as_str()),
            Field::TrafficPath => t.traffic_path.map_or(Value::Absent, |p| Value::Int(p.into())),
            _ => Value::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_in_enum_order() {
        for (i, f) in Field::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i, "{f:?}");
            assert_eq!(Field::from_name(f.name()), Some(f));
            assert_eq!(f.column_name(), f.name().replace('-', "_"));
        }
    }

    #[test]
    fn versions_and_types_follow_the_spec_table() {
        let v = |f: Field| f.version();
        assert!(Field::DEFAULT.iter().all(|&f| v(f) == 2));
        assert_eq!(v(Field::TcpFlags), 3);
        assert_eq!(v(Field::AzId), 4);
        assert_eq!(v(Field::TrafficPath), 5);
        assert_eq!(v(Field::EcsTaskId), 7);
        assert_eq!(v(Field::RejectReason), 8);
        assert_eq!(Field::Version.parquet_type(), ParquetType::Int32);
        assert_eq!(Field::Protocol.parquet_type(), ParquetType::Int32);
        assert_eq!(Field::Packets.parquet_type(), ParquetType::Int64);
        assert_eq!(Field::End.parquet_type(), ParquetType::Int64);
        assert_eq!(Field::TrafficPath.parquet_type(), ParquetType::Int32);
        assert_eq!(Field::Srcaddr.parquet_type(), ParquetType::String);
    }

    #[test]
    fn unknown_names_are_not_fields() {
        assert_eq!(Field::from_name("foo"), None);
        assert_eq!(Field::from_name("account_id"), None);
        assert_eq!(Field::from_name(""), None);
    }
}
