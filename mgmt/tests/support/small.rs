//! A small VPC for behaviour tests: two subnets, ENIs a and b in subnet 1 (a has a
//! secondary IPv4 and an IPv6 address), c in subnet 2, an uplink. Every ENI starts
//! with its own group allowing everything out and nothing in; tests add rules.

#![allow(dead_code)]

use dataplane::addr::Mac;
use dataplane::testkit::Host;
use mgmt::model::{Config, IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
use serde_json::json;

pub const SG_A: &str = "sg-0000000000000000a";
pub const SG_B: &str = "sg-0000000000000000b";
pub const SG_C: &str = "sg-0000000000000000c";
pub const ENI_A: &str = "eni-0000000000000000a";
pub const ENI_B: &str = "eni-0000000000000000b";
pub const ENI_C: &str = "eni-0000000000000000c";
pub const NACL_1: &str = "acl-00000000000000001";

pub fn router() -> Mac {
    Mac::parse("02:76:70:63:67:01").unwrap()
}

pub fn a() -> Host {
    Host::new("02:00:00:00:00:0a", "198.18.1.10")
}
pub fn a2() -> Host {
    Host::new("02:00:00:00:00:0a", "198.18.1.11")
}
pub fn a6() -> Host {
    Host::new("02:00:00:00:00:0a", "2600:1f18:aaaa:1::10")
}
pub fn b() -> Host {
    Host::new("02:00:00:00:00:0b", "198.18.1.20")
}
pub fn c() -> Host {
    Host::new("02:00:00:00:00:0c", "198.18.2.10")
}
pub fn c6() -> Host {
    Host::new("02:00:00:00:00:0c", "2600:1f18:aaaa:2::10")
}
/// An internet host behind the uplink (frames come from the upstream router's MAC).
pub fn x() -> Host {
    Host::new("02:00:00:00:ff:01", "198.19.0.10")
}
pub fn x6() -> Host {
    Host::new("02:00:00:00:ff:01", "2001:db8::10")
}

fn group(id: &str, name: &str) -> serde_json::Value {
    json!({"GroupId": id, "GroupName": name, "Description": name, "VpcId": "vpc-00000000000000001",
           "IpPermissions": [],
           "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]})
}

pub fn config() -> Config {
    let doc = json!({
        "Vpcs": [{"VpcId": "vpc-00000000000000001", "CidrBlock": "198.18.0.0/16", "OwnerId": "111122223333",
                  "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2600:1f18:aaaa::/56"}]}],
        "Subnets": [
            {"SubnetId": "subnet-00000000000000001", "VpcId": "vpc-00000000000000001", "CidrBlock": "198.18.1.0/24",
             "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2600:1f18:aaaa:1::/64"}]},
            {"SubnetId": "subnet-00000000000000002", "VpcId": "vpc-00000000000000001", "CidrBlock": "198.18.2.0/24",
             "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2600:1f18:aaaa:2::/64"}]}
        ],
        "NetworkAcls": [{"NetworkAclId": NACL_1, "VpcId": "vpc-00000000000000001", "IsDefault": false,
                         "Associations": [{"SubnetId": "subnet-00000000000000001"}],
                         "Entries": [
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0"},
                            {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": true, "CidrBlock": "0.0.0.0/0"},
                            {"RuleNumber": 101, "Protocol": "-1", "RuleAction": "allow", "Egress": false, "Ipv6CidrBlock": "::/0"},
                            {"RuleNumber": 101, "Protocol": "-1", "RuleAction": "allow", "Egress": true, "Ipv6CidrBlock": "::/0"}]}],
        "SecurityGroups": [group(SG_A, "a"), group(SG_B, "b"), group(SG_C, "c")],
        "NetworkInterfaces": [
            {"NetworkInterfaceId": ENI_A, "SubnetId": "subnet-00000000000000001", "MacAddress": "02:00:00:00:00:0a",
             "PrivateIpAddresses": [{"PrivateIpAddress": "198.18.1.10", "Primary": true}, {"PrivateIpAddress": "198.18.1.11"}],
             "Ipv6Addresses": [{"Ipv6Address": "2600:1f18:aaaa:1::10"}], "Groups": [{"GroupId": SG_A}]},
            {"NetworkInterfaceId": ENI_B, "SubnetId": "subnet-00000000000000001", "MacAddress": "02:00:00:00:00:0b",
             "PrivateIpAddress": "198.18.1.20", "Groups": [{"GroupId": SG_B}]},
            {"NetworkInterfaceId": ENI_C, "SubnetId": "subnet-00000000000000002", "MacAddress": "02:00:00:00:00:0c",
             "PrivateIpAddress": "198.18.2.10", "Ipv6Addresses": [{"Ipv6Address": "2600:1f18:aaaa:2::10"}], "Groups": [{"GroupId": SG_C}]}
        ],
        "Appliance": {"RouterMac": "02:76:70:63:67:01", "Ports": [
            {"Name": "pa", "Interface": "vg-a", "NetworkInterfaceIds": [ENI_A]},
            {"Name": "pb", "Interface": "vg-b", "NetworkInterfaceIds": [ENI_B]},
            {"Name": "pc", "Interface": "vg-c", "NetworkInterfaceIds": [ENI_C]},
            {"Name": "inet", "Interface": "vg-inet", "Uplink": true, "GatewayMac": "02:00:00:00:ff:01"}]}
    });
    serde_json::from_value(doc).expect("small config parses")
}

pub fn sg<'a>(cfg: &'a mut Config, id: &str) -> &'a mut mgmt::model::SecurityGroup {
    cfg.security_groups.iter_mut().find(|g| g.group_id == id).expect("group")
}

/// An ingress/egress permission: `proto` with ports `from..=to` from/to `cidr`.
pub fn perm(proto: &str, from: i64, to: i64, cidr: &str) -> IpPermission {
    let mut p =
        IpPermission { ip_protocol: proto.into(), from_port: Some(from), to_port: Some(to), ..Default::default() };
    if cidr.contains(':') {
        p.ipv6_ranges.push(Ipv6Range { cidr_ipv6: cidr.into(), description: None });
    } else {
        p.ip_ranges.push(IpRange { cidr_ip: cidr.into(), description: None });
    }
    p
}

pub fn perm_all(cidr: &str) -> IpPermission {
    let mut p = perm("-1", 0, 0, cidr);
    p.from_port = None;
    p.to_port = None;
    p
}

pub fn perm_group(proto: &str, from: i64, to: i64, group: &str) -> IpPermission {
    IpPermission {
        ip_protocol: proto.into(),
        from_port: Some(from),
        to_port: Some(to),
        user_id_group_pairs: vec![UserIdGroupPair { group_id: Some(group.into()), ..Default::default() }],
        ..Default::default()
    }
}
