//! Configs and traffic for the pipeline benchmarks: one server ENI behind the
//! appliance, clients on the internet side.
//!
//! - `quota_config`: the ENI at AWS's default quotas, used to the full: 5 groups x 60
//!   inbound and 60 outbound rules, a 20-entry NACL on its subnet.
//! - `classbench_config`: the ENI with a ClassBench filter set as its inbound rules.

use std::net::{IpAddr, Ipv4Addr};

use dataplane::addr::Mac;
use dataplane::testkit::{self, Flags, Host};
use mgmt::model::Config;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::classbench::Filter;

pub const SERVER_IP: &str = "198.18.1.10";
pub const SERVER_MAC: &str = "02:00:00:00:01:0a";
pub const GATEWAY_MAC: &str = "02:00:00:00:ff:01";
pub const SERVER_ENI: &str = "eni-0be0c0000000000a1";

pub fn router() -> Mac {
    Mac::parse("02:76:70:63:67:01").unwrap()
}

pub fn server() -> Host {
    Host::new(SERVER_MAC, SERVER_IP)
}

/// An internet client, numbered (in 198.19.0.0/16, skipping the attacker's /24).
pub fn client(i: u32) -> Host {
    let i = i % 65_280;
    let (third, fourth) = (i / 256, i % 256);
    let third = if third >= 66 { third + 1 } else { third };
    Host { mac: Mac::parse(GATEWAY_MAC).unwrap(), ip: IpAddr::V4(Ipv4Addr::from(0xc613_0000 | third << 8 | fourth)) }
}

pub fn attacker(i: u32) -> Host {
    Host { mac: Mac::parse(GATEWAY_MAC).unwrap(), ip: IpAddr::V4(Ipv4Addr::from(0xc613_4200 | (i & 0xff))) }
}

fn group_id(k: usize) -> String {
    format!("sg-0be0c00000000{k:04x}")
}

fn base(groups: Vec<Value>, nacl_entries: Vec<Value>, quotas: Value) -> Config {
    let ids: Vec<Value> = groups.iter().map(|g| json!({"GroupId": g["GroupId"]})).collect();
    let doc = json!({
        "Vpcs": [{"VpcId": "vpc-0be0c000000000001", "CidrBlock": "198.18.0.0/16", "OwnerId": "123456789012"}],
        "Subnets": [{"SubnetId": "subnet-0be0c000000000001", "VpcId": "vpc-0be0c000000000001", "CidrBlock": "198.18.1.0/24"}],
        "NetworkAcls": [{"NetworkAclId": "acl-0be0c000000000001", "VpcId": "vpc-0be0c000000000001",
                         "Associations": [{"SubnetId": "subnet-0be0c000000000001"}], "Entries": nacl_entries}],
        "SecurityGroups": groups,
        "NetworkInterfaces": [{"NetworkInterfaceId": SERVER_ENI, "SubnetId": "subnet-0be0c000000000001",
                               "MacAddress": SERVER_MAC, "PrivateIpAddress": SERVER_IP, "Groups": ids}],
        "Appliance": {"RouterMac": "02:76:70:63:67:01", "Quotas": quotas,
                      "Conntrack": {"MaxEntries": 4_194_304, "MaxEntriesPerEni": 4_194_304},
                      "Ports": [{"Name": "server", "Interface": "vg-server", "NetworkInterfaceIds": [SERVER_ENI]},
                                {"Name": "inet", "Interface": "vg-inet", "Uplink": true, "GatewayMac": GATEWAY_MAC}]}
    });
    serde_json::from_value(doc).expect("bench config")
}

fn tcp_perm(port: u16, cidr: &str) -> Value {
    json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]})
}

fn entry(n: u32, proto: &str, action: &str, egress: bool, cidr: &str, ports: Option<(u16, u16)>) -> Value {
    let mut e = json!({"RuleNumber": n, "Protocol": proto, "RuleAction": action, "Egress": egress, "CidrBlock": cidr});
    if let Some((a, b)) = ports {
        e["PortRange"] = json!({"From": a, "To": b});
    }
    e
}

/// AWS's default quotas, used to the full. Clients reach tcp/443 through the last
/// rule of the last group and NACL entry 200; 198.19.66.0/24 is denied by NACL 50.
pub fn quota_config() -> Config {
    let groups = (0..5)
        .map(|k| {
            let mut ingress: Vec<Value> = (0..60).map(|i| tcp_perm(1000 + (k * 60 + i) as u16, &format!("10.{k}.{i}.0/24"))).collect();
            let mut egress: Vec<Value> = (0..60).map(|i| tcp_perm(2000 + (k * 60 + i) as u16, &format!("10.{}.{i}.0/24", k + 100))).collect();
            if k == 4 {
                ingress[59] = tcp_perm(443, "0.0.0.0/0");
                egress[59] = tcp_perm(3306, "10.200.0.0/16");
            }
            json!({"GroupId": group_id(k), "GroupName": format!("tier-{k}"), "Description": "bench", "VpcId": "vpc-0be0c000000000001",
                   "IpPermissions": ingress, "IpPermissionsEgress": egress})
        })
        .collect();
    let mut nacl = vec![entry(50, "-1", "deny", false, "198.19.66.0/24", None)];
    nacl.extend((0..17).map(|i| entry(60 + i, "6", "allow", false, &format!("10.{i}.0.0/16"), Some((22, 22)))));
    nacl.push(entry(200, "6", "allow", false, "0.0.0.0/0", Some((443, 443))));
    nacl.extend((0..18).map(|i| entry(60 + i, "6", "deny", true, &format!("10.{i}.0.0/16"), Some((23, 23)))));
    nacl.push(entry(200, "-1", "allow", true, "0.0.0.0/0", None));
    base(groups, nacl, json!({}))
}

/// A ClassBench filter set as the server ENI's inbound rules (one group; identical
/// filters after the projection to security-group fields are merged, as AWS would
/// refuse duplicates). Returns the config and the filters kept.
pub fn classbench_config(filters: &[Filter]) -> (Config, Vec<Filter>) {
    let mut seen = std::collections::HashSet::new();
    let kept: Vec<Filter> = filters.iter().filter(|f| seen.insert(canonical(f))).cloned().collect();
    let ingress: Vec<Value> = kept
        .iter()
        .map(|f| {
            let cidr = format!("{}/{}", Ipv4Addr::from(f.src), f.src_len);
            match f.proto {
                None => json!({"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]}),
                Some(p @ (6 | 17)) => json!({"IpProtocol": p.to_string(), "FromPort": f.dport_lo, "ToPort": f.dport_hi, "IpRanges": [{"CidrIp": cidr}]}),
                Some(1) => json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": cidr}]}),
                Some(p) => json!({"IpProtocol": p.to_string(), "IpRanges": [{"CidrIp": cidr}]}),
            }
        })
        .collect();
    let group = json!({"GroupId": group_id(0), "GroupName": "classbench", "Description": "bench", "VpcId": "vpc-0be0c000000000001",
                       "IpPermissions": ingress, "IpPermissionsEgress": [tcp_perm(3306, "10.200.0.0/16")]});
    let nacl =
        vec![entry(100, "-1", "allow", false, "0.0.0.0/0", None), entry(100, "-1", "allow", true, "0.0.0.0/0", None)];
    let quotas = json!({"RulesPerSecurityGroup": 100_000});
    (base(vec![group], nacl, quotas), kept)
}

/// What makes two filters the same security-group rule.
fn canonical(f: &Filter) -> (u32, u8, Option<u8>, u16, u16) {
    match f.proto {
        Some(6 | 17) => (f.src, f.src_len, f.proto, f.dport_lo, f.dport_hi),
        _ => (f.src, f.src_len, f.proto, 0, 0),
    }
}

/// A packet matching `f`: a random address of its prefix (outside the VPC) and port
/// of its range. `None` if the prefix lies in the VPC.
pub fn packet_for(f: &Filter, rng: &mut impl Rng, sport: u16) -> Option<Vec<u8>> {
    let host_bits = 32 - f.src_len as u32;
    let noise = if host_bits == 0 { 0 } else { rng.gen::<u32>() & (u32::MAX >> (32 - host_bits)) };
    let src = f.src | noise;
    if src >> 16 == 0xc612 || src >> 24 == 0 || src >> 28 >= 0xe || src >> 24 == 127 || src >> 16 == 0xa9fe {
        return None;
    }
    let from = Host { mac: Mac::parse(GATEWAY_MAC).unwrap(), ip: IpAddr::V4(Ipv4Addr::from(src)) };
    let to = server().ip;
    let dport = rng.gen_range(f.dport_lo..=f.dport_hi);
    Some(match f.proto {
        Some(6) | None => testkit::tcp(&from, to, router(), sport, dport, Flags::SYN, 1, 0, &[0; 6]),
        Some(17) => testkit::udp(&from, to, router(), sport, dport, &[0; 18]),
        Some(1) => testkit::echo(&from, to, router(), sport, 1, false),
        Some(p) => testkit::other(&from, to, router(), p, &[0; 26]),
    })
}

/// `cfg` with a flow log (TrafficType ALL, default format) on the server ENI, to
/// gzip text under `arn:aws:s3:::BUCKET`, aggregated over `interval` seconds (AWS
/// allows 60 or 600; shorter intervals are accepted for benchmarks).
pub fn with_flow_log(mut cfg: Config, interval: u32, bucket: &str) -> Config {
    let fl = json!({"FlowLogId": "fl-0be0c000000000001", "ResourceId": SERVER_ENI, "TrafficType": "ALL",
                    "LogDestinationType": "s3", "LogDestination": format!("arn:aws:s3:::{bucket}"),
                    "MaxAggregationInterval": interval});
    cfg.flow_logs = vec![serde_json::from_value(fl).expect("flow log")];
    cfg
}

/// A deterministic RNG for benchmark traffic.
pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}
