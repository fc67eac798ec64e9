#!/usr/bin/env bash
# The three-tier scenario's hosts (shared/spec/three-tier.md), one network namespace
# each, wired to an appliance namespace whose interfaces vpcgated binds:
#
#   vgt-web      eth0 198.18.1.10 ─── vg-web     ┐
#   vgt-bastion  eth0 198.18.1.20 ─── vg-bastion │
#   vgt-app      eth0 198.18.2.10 ─── vg-app     ├ netns vgt-sw (vpcgated, AF_XDP)
#   vgt-db       eth0 198.18.3.10 ─── vg-db      │
#   vgt-inet     up0 (upstream router) ── vg-inet┘
#     ├─ c0 ─── vgt-client    eth0 198.19.0.10
#     ├─ a0 ─── vgt-admin     eth0 203.0.113.10
#     └─ x0 ─── vgt-attacker  eth0 198.19.66.6
#
# usage: three-tier.sh up [--queues N] | down | exec HOST CMD... | services
#
# MACs are the ENIs' MacAddress of examples/three-tier/config.json, and the upstream
# router's is the config's GatewayMac. Hosts reach other subnets and the internet
# through their gateway (.1), which the appliance answers for; the upstream router
# reaches the VPC on-link (the appliance answers ARP for VPC addresses on the
# uplink). TX checksum offload is off on the hosts (frames cross AF_XDP by copy,
# which would pass partial checksums on). IPv6 is off: the scenario is IPv4.
# Addresses are 198.18.0.0/15 and 203.0.113.0/24 only; nothing leaves the namespaces.
set -euo pipefail

HOSTS=(web bastion app db)
declare -A IP=([web]=198.18.1.10 [bastion]=198.18.1.20 [app]=198.18.2.10 [db]=198.18.3.10
               [client]=198.19.0.10 [admin]=203.0.113.10 [attacker]=198.19.66.6)
declare -A GW=([web]=198.18.1.1 [bastion]=198.18.1.1 [app]=198.18.2.1 [db]=198.18.3.1)
declare -A MAC=([web]=02:00:00:00:01:0a [bastion]=02:00:00:00:01:14 [app]=02:00:00:00:02:0a [db]=02:00:00:00:03:0a)
OUTSIDE=(client admin attacker)
declare -A OUTIF=([client]=c0 [admin]=a0 [attacker]=x0)
GATEWAY_MAC=02:00:00:00:ff:01
SW=vgt-sw
INET=vgt-inet
HERE=$(cd "$(dirname "$0")" && pwd)

ns() { echo "vgt-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
quiet() { "$@" >/dev/null 2>&1 || true; }

host_setup() { # ns ifname ip/len mac
    in_ns "$1" ip link set lo up
    in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    [ -n "$4" ] && in_ns "$1" ip link set "$2" address "$4"
    in_ns "$1" ip addr add "$3" dev "$2"
    in_ns "$1" ip link set "$2" up
    in_ns "$1" ethtool -K "$2" tx off >/dev/null 2>&1 || true
}

veth() { # name-a ns-a name-b ns-b queues
    local q=$5
    ip link add "$1" netns "$2" numtxqueues "$q" numrxqueues "$q" type veth peer name "$3" netns "$4" numtxqueues "$q" numrxqueues "$q"
}

down() {
    for n in "${HOSTS[@]}" "${OUTSIDE[@]}" inet sw; do
        if ip netns list | grep -qw "vgt-$n"; then
            # End whatever the scenario started inside (servers, probes, vpcgated).
            for pid in $(ip netns pids "vgt-$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        fi
    done
    sleep 0.3
    for n in "${HOSTS[@]}" "${OUTSIDE[@]}" inet sw; do
        for pid in $(ip netns pids "vgt-$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        quiet ip netns del "vgt-$n"
    done
}

up() {
    local queues=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --queues) queues=$2; shift 2 ;;
            *) echo "three-tier.sh: unknown option $1" >&2; exit 2 ;;
        esac
    done
    down
    trap 'echo "three-tier.sh: setup failed, cleaning up" >&2; down' ERR
    for n in "${HOSTS[@]}" "${OUTSIDE[@]}" inet sw; do ip netns add "vgt-$n"; done
    in_ns $SW ip link set lo up
    in_ns $SW sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    for h in "${HOSTS[@]}"; do
        veth eth0 "$(ns "$h")" "vg-$h" $SW "$queues"
        host_setup "$(ns "$h")" eth0 "${IP[$h]}/24" "${MAC[$h]}"
        in_ns "$(ns "$h")" ip route add default via "${GW[$h]}"
        in_ns $SW ip link set "vg-$h" up
    done
    # The upstream router and the internet behind it.
    veth up0 $INET vg-inet $SW "$queues"
    in_ns $INET ip link set lo up
    in_ns $INET sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    in_ns $INET ip link set up0 address $GATEWAY_MAC
    # An address of its own, so its ARP requests carry a sender (the appliance never
    # answers ARP probes from 0.0.0.0).
    in_ns $INET ip addr add 198.19.255.254/32 dev up0
    in_ns $INET ip link set up0 up
    in_ns $INET ethtool -K up0 tx off >/dev/null 2>&1 || true
    in_ns $INET ip route add 198.18.0.0/16 dev up0
    in_ns $SW ip link set vg-inet up
    for h in "${OUTSIDE[@]}"; do
        local i=${OUTIF[$h]}
        veth "$i" $INET eth0 "$(ns "$h")" 1
        host_setup "$(ns "$h")" eth0 "${IP[$h]}/32" ""
        in_ns "$(ns "$h")" ip route add default dev eth0
        in_ns $INET ip addr add 198.19.255.254/32 dev "$i"
        in_ns $INET ip link set "$i" up
        in_ns $INET sysctl -qw "net.ipv4.conf.$i.proxy_arp=1"
        in_ns $INET ethtool -K "$i" tx off >/dev/null 2>&1 || true
        in_ns $INET ip route add "${IP[$h]}/32" dev "$i"
    done
    trap - ERR
}

services() {
    # Every VPC host listens on every port the scenario tries, so a refusal is the
    # policy's doing, never a missing listener. Internet hosts serve 443.
    for h in "${HOSTS[@]}"; do
        in_ns "$(ns "$h")" python3 "$HERE/serve.py" "$h" 22 80 443 3306 8080 >/dev/null 2>&1 &
    done
    for h in "${OUTSIDE[@]}"; do
        in_ns "$(ns "$h")" python3 "$HERE/serve.py" "$h" 443 >/dev/null 2>&1 &
    done
    sleep 0.5
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    services) services ;;
    exec) shift; h=$1; shift; in_ns "$(ns "$h")" "$@" ;;
    *) echo "usage: three-tier.sh up [--queues N] | down | services | exec HOST CMD..." >&2; exit 2 ;;
esac
