//! Compiles a checked config into the dataplane's immutable [`Tables`]. This is the
//! one place where AWS's protocol/port semantics become classifier key ranges and
//! group references become member addresses.

use std::collections::{HashMap, HashSet};

use dataplane::addr::{Ip, Prefix};
use dataplane::policy::nacl::{Nacl, NaclDirection, NaclRule};
use dataplane::policy::sg::{SgDirection, SgMatch, SgRuleInfo};
use dataplane::tables::{self, CtLimits, CtTimeouts, Eni, EniId, FastMap, Tables};

use std::sync::Arc;

use flowlog::EniMeta;

use crate::validate::{Checked, EniInfo, NaclPorts, Peer, SgPorts, SgRule};

const ALL_KEYS: (u16, u16) = (0, 65535);

/// Classifier key range of an ICMP type/code selection (`type << 8 | code`).
fn icmp_keys(ty: Option<u8>, code: Option<u8>) -> (u16, u16) {
    match (ty, code) {
        (None, _) => ALL_KEYS,
        (Some(t), None) => ((t as u16) << 8, (t as u16) << 8 | 0xff),
        (Some(t), Some(c)) => ((t as u16) << 8 | c as u16, (t as u16) << 8 | c as u16),
    }
}

pub fn sg_keys(ports: SgPorts) -> (u16, u16) {
    match ports {
        SgPorts::All => ALL_KEYS,
        SgPorts::Range(a, b) => (a, b),
        SgPorts::Icmp { ty, code } => icmp_keys(ty, code),
    }
}

pub fn nacl_keys(ports: NaclPorts) -> (u16, u16) {
    match ports {
        NaclPorts::All => ALL_KEYS,
        NaclPorts::Range(a, b) => (a, b),
        NaclPorts::Icmp { ty, code } => icmp_keys(ty, code),
    }
}

/// Keeps ENI identities stable across compilations for the daemon's lifetime, and
/// numbers the snapshots. Building an ENI's group classifiers is most of a compile
/// (milliseconds with 1,000 rules), so they are kept and reused while nothing they are
/// built from changed: its groups (in order), their rules, and the members of the
/// groups those rules reference.
#[derive(Default)]
pub struct Compiler {
    eni_ids: HashMap<String, u32>,
    generation: u64,
    timeouts_epoch: u64,
    previous_timeouts: HashMap<String, CtTimeouts>,
    /// Each group's rules (ingress, egress) and members as of the last compile.
    group_rules: HashMap<String, [Vec<SgRule>; 2]>,
    group_members: HashMap<String, Vec<Ip>>,
    /// Per ENI, its compiled ingress and egress and the group ids they were built from.
    eni_sg: HashMap<String, [BuiltSg; 2]>,
}

/// A compiled direction and the ids of the groups it was built from.
type BuiltSg = (Vec<String>, Arc<SgDirection>);

impl Compiler {
    pub fn new() -> Compiler {
        Compiler::default()
    }

    pub fn compile(&mut self, c: &Checked) -> Tables {
        self.generation += 1;
        for e in &c.enis {
            let next = self.eni_ids.len() as u32;
            self.eni_ids.entry(e.id.clone()).or_insert(next);
        }
        let timeouts: HashMap<String, CtTimeouts> = c.enis.iter().map(|e| (e.id.clone(), e.timeouts)).collect();
        if self.generation > 1 && timeouts != self.previous_timeouts {
            self.timeouts_epoch += 1;
        }
        self.previous_timeouts = timeouts;

        // Members of each group: every private address of every ENI that has it.
        let mut members: Vec<Vec<Ip>> = vec![Vec::new(); c.groups.len()];
        for e in &c.enis {
            for &g in &e.groups {
                members[g].extend(e.ipv4.iter().map(|&a| Ip::v4(a)));
                members[g].extend(e.ipv6.iter().map(|&a| Ip::v6(a)));
            }
        }

        // Groups whose rules (per direction) or members differ from the last compile.
        let mut rules_changed: HashSet<(&str, bool)> = HashSet::new();
        let mut members_changed: HashSet<String> = HashSet::new();
        for (g, group) in c.groups.iter().enumerate() {
            let cached = self.group_rules.entry(group.id.clone()).or_default();
            for egress in [false, true] {
                let now = group.rules.iter().filter(|r| r.egress == egress);
                if !now.clone().eq(cached[egress as usize].iter()) {
                    rules_changed.insert((group.id.as_str(), egress));
                    cached[egress as usize] = now.cloned().collect();
                }
            }
            if self.group_members.get(&group.id) != Some(&members[g]) {
                members_changed.insert(group.id.clone());
                self.group_members.insert(group.id.clone(), members[g].clone());
            }
        }
        // A group that is gone has no members any more: its references changed too.
        let present: HashSet<&str> = c.groups.iter().map(|g| g.id.as_str()).collect();
        self.group_rules.retain(|id, _| present.contains(id.as_str()));
        self.group_members.retain(|id, _| {
            let keep = present.contains(id.as_str());
            if !keep {
                members_changed.insert(id.clone());
            }
            keep
        });
        let enis_present: HashSet<&str> = c.enis.iter().map(|e| e.id.as_str()).collect();
        self.eni_sg.retain(|id, _| enis_present.contains(id.as_str()));

        let mut enis: Vec<Option<Eni>> = vec![None; self.eni_ids.len()];
        let mut by_mac = FastMap::default();
        let mut by_ipv4 = FastMap::default();
        let mut by_ipv6 = FastMap::default();
        for e in &c.enis {
            let key = EniId(self.eni_ids[&e.id]);
            let sg = |egress: bool| -> Arc<SgDirection> {
                let mut infos = Vec::new();
                let mut matches = Vec::new();
                for &g in &e.groups {
                    let group = &c.groups[g];
                    for r in group.rules.iter().filter(|r| r.egress == egress) {
                        let rule = infos.len() as u32;
                        infos.push(SgRuleInfo { group_id: group.id.clone(), rule_id: r.id.clone(), text: r.text() });
                        let keys = sg_keys(r.ports);
                        let mut push = |peer: Prefix| matches.push(SgMatch { rule, proto: r.proto, keys, peer });
                        match &r.peer {
                            Peer::Cidr(p) => push(*p),
                            Peer::Group(id) => {
                                if let Some(gi) = c.group_index(id) {
                                    members[gi].iter().for_each(|&ip| push(Prefix::host(ip)));
                                }
                            }
                        }
                    }
                }
                Arc::new(SgDirection::build(infos, &matches))
            };
            let group_ids: Vec<String> = e.groups.iter().map(|&g| c.groups[g].id.clone()).collect();
            // A direction is reused when its groups, their rules in that direction and
            // the members of the groups those rules reference are what it was built from.
            let unchanged = |egress: bool| {
                e.groups.iter().all(|&g| {
                    let group = &c.groups[g];
                    !rules_changed.contains(&(group.id.as_str(), egress))
                        && (members_changed.is_empty()
                            || !group.rules.iter().any(|r| {
                                r.egress == egress && matches!(&r.peer, Peer::Group(id) if members_changed.contains(id))
                            }))
                })
            };
            let cached = self.eni_sg.get(&e.id);
            let [sg_ingress, sg_egress] = [false, true].map(|egress| match cached {
                Some(dirs) if dirs[egress as usize].0 == group_ids && unchanged(egress) => {
                    dirs[egress as usize].1.clone()
                }
                _ => sg(egress),
            });
            self.eni_sg.insert(e.id.clone(), [(group_ids.clone(), sg_ingress.clone()), (group_ids, sg_egress.clone())]);
            if let Some(p) = e.port {
                by_mac.insert(Tables::mac_key(p as u16, e.mac), key);
            }
            for &a in &e.ipv4 {
                by_ipv4.insert(a, key);
            }
            for &a in &e.ipv6 {
                by_ipv6.insert(a, key);
            }
            enis[key.0 as usize] = Some(Eni {
                id: e.id.clone(),
                key,
                vpc: e.vpc as u16,
                subnet: e.subnet as u16,
                port: e.port.map(|p| p as u16),
                mac: e.mac,
                ipv4: e.ipv4.clone(),
                ipv6: e.ipv6.clone(),
                source_dest_check: e.source_dest_check,
                timeouts: e.timeouts,
                sg_ingress,
                sg_egress,
                account_id: e.owner.clone().unwrap_or_else(|| "000000000000".into()),
                instance_id: e.instance_id.clone(),
                flow_meta: flow_logged(c, e).then(|| Arc::new(eni_meta(c, e))),
            });
        }

        let nacls = c
            .nacls
            .iter()
            .map(|n| {
                let dir = |egress: bool| {
                    NaclDirection::build(
                        n.entries
                            .iter()
                            .filter(|e| e.egress == egress)
                            .map(|e| NaclRule {
                                rule_number: e.rule_number,
                                allow: e.allow,
                                proto: e.proto,
                                keys: nacl_keys(e.ports),
                                cidr: e.cidr,
                                text: e.text(),
                            })
                            .collect(),
                    )
                };
                Nacl { id: n.id.clone(), ingress: dir(false), egress: dir(true) }
            })
            .collect();

        let ports: Vec<tables::Port> = c
            .ports
            .iter()
            .map(|p| tables::Port { name: p.name.clone(), uplink: p.uplink, gateway_mac: p.gateway_mac })
            .collect();
        let uplink = ports.iter().position(|p| p.uplink).map(|i| i as u16);
        let appliance = &c.config.appliance;
        let mut tables = Tables {
            generation: self.generation,
            snapshot: Tables::next_snapshot(),
            timeouts_epoch: self.timeouts_epoch,
            // The publisher stamps the time it publishes at.
            published_at: 0,
            router_mac: c.router_mac,
            router_link_local: [0xfe80u128 << 112 | 1, Tables::eui64_link_local(c.router_mac)],
            ports,
            uplink,
            vpcs: c.vpcs.iter().map(|v| tables::Vpc { id: v.id.clone(), cidrs: v.cidrs.clone() }).collect(),
            subnets: c
                .subnets
                .iter()
                .map(|s| tables::Subnet {
                    id: s.id.clone(),
                    vpc: s.vpc as u16,
                    cidrs: s.cidrs.clone(),
                    nacl: s.nacl as u16,
                })
                .collect(),
            nacls,
            enis,
            by_mac,
            by_ipv4,
            by_ipv6,
            ct_limits: CtLimits { max_entries_per_eni: appliance.conntrack.max_entries_per_eni },
            vpc_ranges: Vec::new(),
            flow_interval_secs: flow_interval(c),
        };
        tables.index_vpcs();
        tables
    }
}

/// Does any flow log cover this ENI (by its id, its subnet or its VPC)?
fn flow_logged(c: &Checked, e: &EniInfo) -> bool {
    let (subnet, vpc) = (&c.subnets[e.subnet].id, &c.vpcs[e.vpc].id);
    c.config.flow_logs.iter().any(|f| f.resource_id == e.id || &f.resource_id == subnet || &f.resource_id == vpc)
}

/// The accounting interval: the shortest aggregation interval of any flow log
/// (600 s when a flow log does not say, as AWS), 0 without flow logs.
fn flow_interval(c: &Checked) -> u32 {
    c.config.flow_logs.iter().map(|f| f.max_aggregation_interval.unwrap_or(600).clamp(1, 600) as u32).min().unwrap_or(0)
}

/// What flow records say about an ENI.
pub fn eni_meta(c: &Checked, e: &EniInfo) -> EniMeta {
    let subnet = &c.subnets[e.subnet];
    EniMeta {
        interface_id: e.id.clone(),
        account_id: e.owner.clone().unwrap_or_else(|| "000000000000".into()),
        vpc_id: c.vpcs[e.vpc].id.clone(),
        subnet_id: subnet.id.clone(),
        instance_id: e.instance_id.clone(),
        region: c.config.appliance.region.clone(),
        az_id: subnet.az_id.clone(),
        primary_ipv4: e.ipv4.first().map(|&a| std::net::Ipv4Addr::from(a)),
    }
}

/// Compiles once (for tools that do not live long, like `replay`).
pub fn compile_once(c: &Checked) -> Tables {
    Compiler::new().compile(c)
}
