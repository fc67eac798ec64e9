//! The appliance-only part of the config: ports, the router's MAC, conntrack sizes,
//! quotas and where state and flow logs live. Unknown fields here are errors.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Appliance {
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// The MAC the appliance answers ARP/ND with and sends from.
    #[serde(default = "default_router_mac")]
    pub router_mac: String,
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    #[serde(default)]
    pub quotas: Quotas,
    /// AWS region and account for flow-log records when the documents do not say.
    #[serde(default = "default_region")]
    pub region: String,
    /// Root directory of locally delivered flow logs (default: under the state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_log_root: Option<String>,
    /// Where `vpcgated` keeps its pid file and saved config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_directory: Option<String>,
    /// The management API's socket and who may use it.
    #[serde(default)]
    pub api: ApiConfig,
    /// The AF_XDP workers.
    #[serde(default)]
    pub workers: WorkersConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WorkersConfig {
    /// Workers, one per receive queue (default: one per queue of the ports, at most
    /// one per core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Cores to pin workers to, in order (default: every core the process may use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<usize>,
    /// `auto` (default: driver mode with zero-copy where the driver offers it, else
    /// SKB mode), `skb` or `driver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
    /// Ask for zero-copy (default true; copy mode is the reported fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_copy: Option<bool>,
    /// `adaptive` (default: sleep in the kernel when idle) or `busy` (spin: lowest
    /// latency, a whole core per worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// Frames per batch (default 64, at most 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Entries in every AF_XDP ring (default 4096, a power of two from 64 to 16384).
    /// Larger rings absorb longer bursts while the core is busy; smaller ones keep the
    /// UMEM's working set in cache (BENCHMARKS.md, wire benchmark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_size: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path (default `/run/vpcgate/api.sock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// Members of this group may change the config (root always may).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_group: Option<String>,
    /// Members of this group may describe, trace, audit and read stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_group: Option<String>,
    /// A loopback address and port (`127.0.0.1:9464`, `[::1]:9464`) where `vpcgated`
    /// serves `GET /metrics` for Prometheus to scrape (off when absent). Read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
}

impl Default for Appliance {
    fn default() -> Self {
        Appliance {
            ports: Vec::new(),
            router_mac: default_router_mac(),
            conntrack: ConntrackConfig::default(),
            quotas: Quotas::default(),
            region: default_region(),
            flow_log_root: None,
            state_directory: None,
            api: ApiConfig::default(),
            workers: WorkersConfig::default(),
        }
    }
}

fn default_router_mac() -> String {
    "02:76:70:63:67:01".into()
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    /// The Linux interface the port is bound to.
    pub interface: String,
    /// ENIs reachable through this port (frames from them carry their MAC).
    #[serde(default)]
    pub network_interface_ids: Vec<String>,
    /// The port faces outside the VPC.
    #[serde(default)]
    pub uplink: bool,
    /// Uplink only: the upstream router's MAC, where frames leaving the VPC go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Entries per worker core.
    #[serde(default = "default_ct_entries")]
    pub max_entries: u32,
    /// Entries one ENI may hold per worker core.
    #[serde(default = "default_ct_per_eni")]
    pub max_entries_per_eni: u32,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig { max_entries: default_ct_entries(), max_entries_per_eni: default_ct_per_eni() }
    }
}

fn default_ct_entries() -> u32 {
    262_144
}

fn default_ct_per_eni() -> u32 {
    65_536
}

/// EC2's quotas, AWS defaults unless raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Quotas {
    /// Inbound or outbound rules per security group, per IP family.
    #[serde(default = "q60")]
    pub rules_per_security_group: u32,
    #[serde(default = "q5")]
    pub security_groups_per_network_interface: u32,
    /// NACL entries per direction and IP family, the default deny included.
    #[serde(default = "q20")]
    pub network_acl_entries_per_acl: u32,
    #[serde(default = "q200")]
    pub network_acls_per_vpc: u32,
    #[serde(default = "q2500")]
    pub security_groups_per_vpc: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            rules_per_security_group: 60,
            security_groups_per_network_interface: 5,
            network_acl_entries_per_acl: 20,
            network_acls_per_vpc: 200,
            security_groups_per_vpc: 2500,
        }
    }
}

fn q60() -> u32 {
    60
}
fn q5() -> u32 {
    5
}
fn q20() -> u32 {
    20
}
fn q200() -> u32 {
    200
}
fn q2500() -> u32 {
    2500
}
