#!/usr/bin/env bash
# A test topology for AF_XDP on veth: two hosts and a switch, each in its own network
# namespace, joined by veth pairs. Nothing is created in the caller's namespace.
#
#   netns PFXh1              netns PFXsw                     netns PFXh2
#   PFXh1 198.18.0.1/24 ==== PFXsa   (forwarder)   PFXsb ==== PFXh2 198.18.0.2/24
#
# usage: topo.sh up   [--prefix P] [--queues N] [--tx-off] [--mtu M]
#                     [--h1-addr A/L] [--h2-addr A/L]
#        topo.sh down [--prefix P]
#        topo.sh show [--prefix P]
#
#   --prefix P   names start with P (default vgx-; at most 12 characters, so that the
#                interface names fit in 15). Use a unique one per concurrent test.
#   --queues N   veths with N rx and N tx queues on both ends (default 1).
#   --tx-off     turn TX checksum offload (and with it TSO) off on the hosts' ends:
#                a forwarder that copies frames through AF_XDP passes on the partial
#                checksums of offloaded packets, and the receiver drops them.
#   --mtu M      MTU of every veth (default 1500).
#   --h1-addr A/L, --h2-addr A/L
#                the hosts' addresses (default 198.18.0.1/24 and 198.18.0.2/24). A
#                routing switch puts them in different subnets, e.g. an internet
#                client 198.19.0.10/24 and a VPC host 198.18.1.10/24. Both must be in
#                198.18.0.0/15.
#
# Addresses are from 198.18.0.0/15 (RFC 2544 benchmarking) only; the namespaces have
# no route anywhere else. `up` removes what it made if it fails half-way; `down` is
# idempotent and also ends processes still running inside the namespaces (only
# processes of these namespaces: they were started by the test that made them).
set -euo pipefail

cmd=${1:-}
[[ -n "$cmd" ]] && shift
prefix=vgx-
queues=1
tx_off=0
mtu=1500
addr_h1=198.18.0.1/24
addr_h2=198.18.0.2/24
while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --queues) queues=$2; shift 2 ;;
        --tx-off) tx_off=1; shift ;;
        --mtu) mtu=$2; shift 2 ;;
        --h1-addr) addr_h1=$2; shift 2 ;;
        --h2-addr) addr_h2=$2; shift 2 ;;
        *) echo "topo.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ "$prefix" != vgx-* ]]; then
    echo "topo.sh: prefix must start with vgx- (got $prefix)" >&2
    exit 2
fi
if (( ${#prefix} > 12 )); then
    echo "topo.sh: prefix $prefix is longer than 12 characters" >&2
    exit 2
fi
if ! [[ "$queues" =~ ^[1-9][0-9]*$ ]]; then
    echo "topo.sh: --queues needs a positive number" >&2
    exit 2
fi

# Only benchmark addresses (RFC 2544, 198.18.0.0/15): nothing these hosts send can be
# meant for a real network.
for a in "$addr_h1" "$addr_h2"; do
    if ! [[ "$a" =~ ^198\.1[89]\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] \
        || (( BASH_REMATCH[1] > 255 || BASH_REMATCH[2] > 255 || BASH_REMATCH[3] < 15 || BASH_REMATCH[3] > 32 )); then
        echo "topo.sh: $a is not an address/length inside 198.18.0.0/15" >&2
        exit 2
    fi
done

ns_h1=${prefix}h1
ns_h2=${prefix}h2
ns_sw=${prefix}sw
if_h1=${prefix}h1
if_h2=${prefix}h2
if_sa=${prefix}sa
if_sb=${prefix}sb
ip_h1=${addr_h1%/*}
ip_h2=${addr_h2%/*}

down() {
    local ns pid
    for ns in "$ns_h1" "$ns_h2" "$ns_sw"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
    done
    for ns in "$ns_h1" "$ns_h2" "$ns_sw"; do
        [[ -e /run/netns/$ns ]] || continue
        # Give the processes ended above a moment, then make sure.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
            sleep 0.1
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        # Deleting a namespace deletes its veths, and with them their peers.
        ip netns del "$ns" 2>/dev/null || true
    done
}

host_setup() {
    local ns=$1 dev=$2 addr=$3
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" mtu "$mtu" up
    ip -n "$ns" addr add "$addr" dev "$dev"
    if (( tx_off )); then
        ip netns exec "$ns" ethtool -K "$dev" tx off >/dev/null
    fi
}

quiet_ipv6() {
    # No router solicitations or DAD chatter on the test links: counters stay exact.
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

up() {
    for ns in "$ns_h1" "$ns_h2" "$ns_sw"; do
        if [[ -e /run/netns/$ns ]]; then
            echo "topo.sh: namespace $ns exists; run topo.sh down --prefix $prefix" >&2
            exit 1
        fi
    done
    trap 'echo "topo.sh: setup failed, removing what was made" >&2; down' ERR
    for ns in "$ns_h1" "$ns_h2" "$ns_sw"; do
        ip netns add "$ns"
        quiet_ipv6 "$ns"
    done
    local q="numtxqueues $queues numrxqueues $queues"
    # shellcheck disable=SC2086
    ip link add "$if_h1" netns "$ns_h1" $q type veth peer name "$if_sa" netns "$ns_sw" $q
    # shellcheck disable=SC2086
    ip link add "$if_h2" netns "$ns_h2" $q type veth peer name "$if_sb" netns "$ns_sw" $q
    ip -n "$ns_sw" link set lo up
    ip -n "$ns_sw" link set "$if_sa" mtu "$mtu" up
    ip -n "$ns_sw" link set "$if_sb" mtu "$mtu" up
    host_setup "$ns_h1" "$if_h1" "$addr_h1"
    host_setup "$ns_h2" "$if_h2" "$addr_h2"
    trap - ERR
    show
}

show() {
    cat <<EOF
ns_h1=$ns_h1 if_h1=$if_h1 ip_h1=$ip_h1 addr_h1=$addr_h1
ns_h2=$ns_h2 if_h2=$if_h2 ip_h2=$ip_h2 addr_h2=$addr_h2
ns_sw=$ns_sw if_sa=$if_sa if_sb=$if_sb
queues=$queues tx_off=$tx_off mtu=$mtu
EOF
}

case "$cmd" in
    up) up ;;
    down) down ;;
    show) show ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
