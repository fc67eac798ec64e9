#!/usr/bin/env bash
# The wire benchmark: delivered Mpps and latency of four ways of forwarding the same
# traffic between the same namespaces, driven by the same generator, in one run.
#
#   netns vgx-wNNNNN-h1 (generator)      netns vgx-wNNNNN-sw (DUT)       netns vgx-wNNNNN-h2 (sink)
#   h1 198.19.0.10/24  ====  sa (uplink side) [leg] sb (web side)  ====  h2 198.18.1.10/24
#
# Legs (the DUT in the middle namespace is switched between them; veths stay):
#   vpcgate   vpcgated with the three-tier scenario's policy (perf/baselines/vpcgate-config.jq)
#   xdpfwd    our bare AF_XDP L2 forwarder, no policy: the ceiling for vpcgate
#   nftables  Linux routing + a stateful nftables ruleset equivalent to the policy
#             (perf/baselines/nftables.nft)
#   ovs       Open vSwitch's userspace datapath, AF_XDP ports, ct() flows equivalent to
#             the policy (perf/baselines/ovs-flows.txt)
# Traffic: xdpgen (perf/src/bin/xdpgen.rs) sends UDP from the internet client
# 198.19.0.10 (N source ports) to the web ENI 198.18.1.10 udp/9, which the policy
# allows (web-sg and the public NACL get one benchmark rule each, on every leg), and
# receives it on h2 with AF_XDP, timestamps compared in one process.
#
# usage: perf/bench-wire.sh [--runs N] [--duration S] [--flows N] [--size 64|imix|B]
#                           [--rate PPS|max] [--lat-rate PPS|auto] [--legs L,L,...]
#                           [--mode auto|skb|driver] [--ring N] [--nft-rx sender|rps|napi] [--no-prio]
#                           [--no-install] [--bin DIR] [--keep]
#
#   --runs N       runs per leg; medians are reported (default 3)
#   --duration S   seconds of traffic per run (default 5)
#   --flows N      UDP flows (source ports 1024..) (default 64)
#   --size S       frame size with FCS: 64 (default), another size, or imix (7:4:1 of
#                  64/576/1500)
#   --rate R       max (default): send flat out and report what is delivered; or a
#                  fixed rate in frames/s, which is then also the latency rate
#   --lat-rate R   with --rate max, the fixed rate of the latency runs: auto (default)
#                  is half the slowest leg's median Mpps of this run, so it is below
#                  every leg's maximum and latency is not queueing at saturation
#   --legs L       which legs, in order (default vpcgate,xdpfwd,nftables,nftables:napi,
#                  ovs). nftables:sender|rps|napi is the nftables leg with that
#                  --nft-rx, so that one run compares placements; "× nftables" is
#                  against the fastest nftables leg of the run
#   --mode M       XDP mode of the AF_XDP sockets (generator, xdpfwd, OVS): auto (= SKB
#                  on veth, the faster one there), skb, driver
#   --ring N       entries in every AF_XDP ring of vpcgated (Appliance.Workers.RingSize)
#                  and xdpfwd alike (default 4096, vpcgated's default): the ring size sets
#                  the UMEM's size and so how much of it stays in cache, so the two legs
#                  are only comparable with the same rings
#   --nft-rx WHERE where the plain nftables leg forwards. A frame sent into a veth is
#                  received -- for nftables: routed, tracked, filtered and sent on --
#                  by the core that sent it, in its softirq. sender (default): leave
#                  it there, on the generator's core. rps or napi: move it to the DUT
#                  core (RPS, or a threaded-NAPI kernel thread pinned there with the
#                  DUT's priority). Which is faster varies on this VM (cross-core
#                  hand-off per packet against sharing the generator's core), so the
#                  default run has both sender and napi and compares vpcgate with the
#                  faster. The AF_XDP legs' own work is on the DUT core; veth does
#                  their receive copy on the sending core the same way (BENCHMARKS.md).
#   --no-prio      run at normal priority; by default the generator and the DUT's
#                  processes run in their own session with autogroup nice -20, so that
#                  builds in other sessions take less of their cores
#   --no-install   do not apt-get install missing packages (a leg whose tools are
#                  missing is then reported unavailable)
#   --bin DIR      where xdpgen, xdpfwd, vpcgated and vpcgate are (default
#                  target/release; built if missing)
#   --keep         keep the work directory (logs, configs, raw JSON) even on success
#
# Cores: the generator on the first core, every DUT on the last (2-core VM: 0 and 1).
# Prints a markdown table on stdout, progress on stderr; xdpgen's JSON lines and the
# legs' logs and configs are in a work directory, kept with --keep or on failure. Makes its
# own namespaces and removes them, and whatever each leg started, however it ends
# (failure, Ctrl-C). Only 198.18.0.0/15 addresses; traffic never leaves the namespaces.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
topo_sh=$root/scripts/netns/topo.sh
baselines=$here/baselines

orig_args=("$@")
runs=3
duration=5
flows=64
size=64
rate=max
lat_rate=auto
legs_arg=vpcgate,xdpfwd,nftables,nftables:napi,ovs
mode=auto
ring=4096
nft_rx=sender
prio=1
install=1
bin=$root/target/release
keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --flows) flows=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --lat-rate) lat_rate=$2; shift 2 ;;
        --legs) legs_arg=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --ring) ring=$2; shift 2 ;;
        --nft-rx) nft_rx=$2; shift 2 ;;
        --no-prio) prio=0; shift ;;
        --no-install) install=0; shift ;;
        --bin) bin=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-wire.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench-wire.sh: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_uint "$runs" || die "--runs needs a positive number"
is_uint "$flows" || die "--flows needs a positive number"
[[ $duration =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration needs seconds"
[[ $rate == max ]] || is_uint "$rate" || die "--rate needs frames/s or max"
[[ $lat_rate == auto ]] || is_uint "$lat_rate" || die "--lat-rate needs frames/s or auto"
case "$size" in
    imix) size_args=(--imix); frame=IMIX ;;
    *) if ! [[ $size =~ ^[0-9]+$ ]] || (( size < 64 || size > 1518 )); then
           die "--size needs 64..1518 or imix"
       fi
       size_args=(--size "$size"); frame="$size B" ;;
esac
case "$ring" in 64|128|256|512|1024|2048|4096|8192|16384) ;; *) die "--ring needs a power of two from 64 to 16384" ;; esac
case "$nft_rx" in sender|rps|napi) ;; *) die "--nft-rx needs sender, rps or napi" ;; esac
case "$mode" in
    auto|skb) ovs_xdp_mode=generic ;;
    driver) ovs_xdp_mode=native ;;
    *) die "--mode needs auto, skb or driver" ;;
esac
IFS=, read -r -a legs <<<"$legs_arg"
for leg in "${legs[@]}"; do
    case "$leg" in
        vpcgate|xdpfwd|nftables|ovs|nftables:sender|nftables:rps|nftables:napi) ;;
        *) die "unknown leg $leg" ;;
    esac
done
(( EUID == 0 )) || die "needs root (namespaces, XDP)"

# --- Names and addresses ---------------------------------------------------------
# One prefix per run of this script, so that two runs (or other tests using topo.sh)
# never share a namespace.
prefix=vgx-w$(( $$ % 100000 ))-
ns_gen=${prefix}h1
ns_dut=${prefix}sw
ns_sink=${prefix}h2
if_gen=${prefix}h1
if_sink=${prefix}h2
if_up=${prefix}sa     # the DUT's uplink side, facing the generator
if_web=${prefix}sb    # the DUT's web side, facing the sink
client_ip=198.19.0.10 # the scenario's "client" (internet)
web_ip=198.18.1.10    # the scenario's web ENI
udp_port=9            # the benchmark's rule pair allows udp/9 to web
# vpcgate's RouterMac (the config's default); the nftables router and OVS take it too,
# so the generator sends byte-identical frames to the three routing legs.
router_mac=02:76:70:63:67:01
cores=$(nproc)
gen_core=0
dut_core=$(( cores - 1 ))
(( cores >= 2 )) || die "needs 2 cores: the generator and the DUT must not share one"

work=$(mktemp -d /tmp/vgx-wire.XXXXXX)
results=$work/results      # phase leg run json, one line each
: >"$results"
current_leg=               # the leg that is up, for the exit trap
failed=0
declare -A unavailable=()  # leg -> why

log() { echo "bench-wire: $*" >&2; }

# --- Cleanup ----------------------------------------------------------------------
policy_rc_made=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n ${gen_pid:-} ]]; then
        kill -INT "$gen_pid" 2>/dev/null || true
        wait "$gen_pid" 2>/dev/null || true
    fi
    if [[ -n $current_leg ]]; then
        "down_${current_leg%%:*}" || true
    fi
    # Ends whatever still runs in the namespaces (they are ours), deletes them and
    # with them every veth.
    "$topo_sh" down --prefix "$prefix" >/dev/null 2>&1 || true
    if (( policy_rc_made )); then rm -f /usr/sbin/policy-rc.d; fi
    if (( keep || failed || rc != 0 )); then
        log "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C or a kill: leave through the EXIT trap, which cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Tools ------------------------------------------------------------------------
# Debian packages the legs need. openvswitch-switch brings ovs-vswitchd with AF_XDP
# support (and libxdp1); jq builds vpcgate's config and reads xdpgen's JSON.
need_pkgs=(iproute2 ethtool jq util-linux)
for leg in "${legs[@]}"; do
    case "$leg" in
        nftables*) need_pkgs+=(nftables) ;;
        ovs) need_pkgs+=(openvswitch-switch) ;;
    esac
done
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
    if (( install )); then
        log "installing ${missing[*]}"
        # The package's postinst would start a system-wide Open vSwitch in the root
        # namespace; we want only our private one in the DUT namespace. policy-rc.d
        # returning 101 tells invoke-rc.d not to start services (kept if one exists).
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_rc_made=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
        if (( policy_rc_made )); then rm -f /usr/sbin/policy-rc.d; policy_rc_made=0; fi
    else
        log "missing packages: ${missing[*]} (--no-install given)"
    fi
fi
command -v jq >/dev/null || die "jq is needed"
if ! command -v nft >/dev/null; then
    for leg in nftables nftables:sender nftables:rps nftables:napi; do unavailable[$leg]="nft not installed"; done
fi
command -v ovs-vswitchd >/dev/null || unavailable[ovs]="openvswitch-switch not installed"

want_bins=(xdpgen xdpfwd)
for leg in "${legs[@]}"; do
    if [[ $leg == vpcgate ]]; then want_bins+=(vpcgated); fi
done
for b in "${want_bins[@]}"; do
    if [[ ! -x $bin/$b ]]; then
        log "building xdpgen, xdpfwd, vpcgated and vpcgate (release)"
        (cd "$root" && cargo build --release -p perf --bin xdpgen --bin xdpfwd -p mgmt --bin vpcgated --bin vpcgate) >&2
        break
    fi
done

# --- Helpers ----------------------------------------------------------------------
# spawn NS CMD...: starts CMD inside namespace NS in the background; its pid in
# $spawned. With priority, in a session of its own whose autogroup gets nice -20
# (plain nice means little across sessions when the kernel groups tasks by session,
# as it does here). A simple command put in the background: bash forks once and the
# child execs setsid, bash, ip netns exec and CMD in turn, so $! is CMD's own pid, the
# one to signal and wait for (a function put in the background would be a subshell
# between them). setsid does not fork: a script's background job leads no group.
spawned=
spawn() {
    local ns=$1
    shift
    if (( prio )) && [[ -e /proc/self/autogroup ]]; then
        setsid bash -c 'echo -20 >/proc/self/autogroup; exec ip netns exec "$@"' _ "$ns" "$@" &
    else
        ip netns exec "$ns" "$@" &
    fi
    spawned=$!
}

mac_of() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# wait_for_line FILE REGEX PID SECONDS: until FILE has a line matching REGEX (0), PID
# is gone (1) or the time is up (2).
wait_for_line() {
    local file=$1 re=$2 pid=$3 i
    for (( i = 0; i < $4 * 10; i++ )); do
        grep -Eq "$re" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 2
}

# stop_pid PID [SECONDS]: SIGTERM, a grace period, then SIGKILL. Only pids we started.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for (( i = 0; i < ${2:-10} * 10; i++ )); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The DUT namespace back to bare veths: every leg's teardown ends with this, so the
# next leg starts from the same state whatever the last one left (an XDP program of a
# killed daemon, addresses, a MAC).
dut_reset() {
    local dev pid
    # Processes still in the DUT namespace are ours (a leg's daemon that did not stop).
    for pid in $(ip netns pids "$ns_dut" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    for dev in "$if_up" "$if_web"; do
        ip -n "$ns_dut" link set dev "$dev" xdpgeneric off 2>/dev/null || true
        ip -n "$ns_dut" link set dev "$dev" xdpdrv off 2>/dev/null || true
        ip -n "$ns_dut" addr flush dev "$dev" 2>/dev/null || true
        ip -n "$ns_dut" link set dev "$dev" promisc off 2>/dev/null || true
    done
    ip -n "$ns_dut" link set dev "$if_up" address "$dut_up_mac" 2>/dev/null || true
    ip netns exec "$ns_dut" sysctl -qw net.ipv4.ip_forward=0 2>/dev/null || true
    steer_rx sender
}

# steer_rx sender|rps|napi: where the DUT's ingress veth does its receive processing
# (--nft-rx). RPS queues it to the DUT core's backlog, processed in softirq or, when
# that falls behind, in ksoftirqd (which anything busy on that core starves: 98% loss
# behind a busy-polling forwarder). napi: GRO on gives the veth a NAPI context (GRO
# does not merge this UDP: rx-udp-gro-forwarding stays off), threaded NAPI gives it
# a kernel thread, and the thread goes on the DUT core with the DUT's priority.
steer_rx() {
    local dev=/sys/class/net/$if_up pid=
    ip netns exec "$ns_dut" sh -c "echo 0 >$dev/queues/rx-0/rps_cpus; echo 0 >$dev/threaded" 2>/dev/null || true
    ip netns exec "$ns_dut" ethtool -K "$if_up" gro off >/dev/null 2>&1 || true
    case "$1" in
        rps)
            ip netns exec "$ns_dut" sh -c "echo $dut_mask >$dev/queues/rx-0/rps_cpus" ;;
        napi)
            ip netns exec "$ns_dut" ethtool -K "$if_up" gro on >/dev/null
            ip netns exec "$ns_dut" sh -c "echo 1 >$dev/threaded"
            # The thread is named napi/<device>-<napi id>, and the device name is
            # ours. Its full name is only in /proc/PID/comm (pgrep reads 15 characters).
            local c name
            for _ in $(seq 20); do
                for c in /proc/[0-9]*/comm; do
                    read -r name <"$c" 2>/dev/null || continue
                    if [[ $name =~ ^napi/$if_up-[0-9]+$ ]]; then pid=${c#/proc/}; pid=${pid%/comm}; break; fi
                done
                [[ -n $pid ]] && break
                sleep 0.1
            done
            [[ -n $pid ]] || { why="no NAPI thread for $if_up"; return 1; }
            taskset -p "$dut_mask" "$pid" >/dev/null
            if (( prio )); then renice -n -20 -p "$pid" >/dev/null; fi
            ;;
    esac
}
dut_mask=$(printf '%x' $(( 1 << dut_core )))

# --- Topology ---------------------------------------------------------------------
log "namespaces ${prefix}{h1,sw,h2}; generator on core $gen_core, DUT on core $dut_core"
# tx off on the hosts: an AF_XDP forwarder copies frames as they are, so hosts must not
# leave checksums to an offload (the notes: TCP through AF_XDP on veth needs it; the
# generator's UDP carries full checksums anyway). Same for every leg.
"$topo_sh" up --prefix "$prefix" --tx-off --h1-addr "$client_ip/24" --h2-addr "$web_ip/24" >/dev/null
gen_mac=$(mac_of "$ns_gen" "$if_gen")
sink_mac=$(mac_of "$ns_sink" "$if_sink")
dut_up_mac=$(mac_of "$ns_dut" "$if_up")

# check_cores PID NAME: warn when a thread of a DUT process may run on other cores
# than the DUT's (a daemon that pins its own threads overrides taskset).
check_cores() {
    local t allowed
    for t in /proc/"$1"/task/*; do
        allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" 2>/dev/null) || continue
        if [[ -n $allowed && $allowed != "$dut_core" ]]; then
            log "warning: $2 thread $(cat "$t/comm" 2>/dev/null) (tid ${t##*/}) may run on cores $allowed, not only the DUT core $dut_core"
        fi
    done
}

# --- Legs: up_LEG sets the DUT up (and sets dst_mac, what the generator sends to);
# down_LEG takes it down and always ends with dut_reset. up_LEG returns non-zero with
# the reason in $why when the leg cannot run. -------------------------------------

dut_pid=
why=

# Not a leg of the table: the generator alone, received by xdpgen itself on the DUT's
# ingress veth with nothing forwarding. The most any leg could deliver in this run,
# and a gauge of how fast the (shared) machine is right now.
up_nodut() {
    dst_mac=$dut_up_mac
    rx_if=$if_up
    rx_ns=$ns_dut
}
down_nodut() {
    rx_if=
    rx_ns=
    dut_reset
}

up_xdpfwd() {
    dst_mac=$sink_mac # an L2 forwarder: frames are addressed to the far host
    local log=$work/xdpfwd.log
    spawn "$ns_dut" "$bin/xdpfwd" --a "$if_up" --b "$if_web" --cores "$dut_core" --mode "$mode" --ring "$ring" >"$log" 2>&1
    dut_pid=$spawned
    if ! wait_for_line "$log" '^xdpfwd: ready' "$dut_pid" 20; then
        why="xdpfwd did not start: $(tail -1 "$log")"
        return 1
    fi
}
down_xdpfwd() {
    stop_pid "$dut_pid"
    dut_pid=
    dut_reset
}

up_vpcgate() {
    dst_mac=$router_mac
    local cfg=$work/vpcgate.json state=$work/vpcgate-state log=$work/vpcgated.log
    rm -rf "$state"
    mkdir -p "$state"
    # The scenario's config with one benchmark rule pair, bound to this topology: the
    # web ENI has the sink's MAC and sits behind the web-side veth; the uplink's
    # gateway is the generator (its MAC is the one frames from the internet carry).
    jq --arg uplink "$if_up" --arg web "$if_web" --arg gateway_mac "$gen_mac" \
        --arg web_mac "$sink_mac" --arg router_mac "$router_mac" --argjson port "$udp_port" --argjson ring "$ring" \
        -f "$baselines/vpcgate-config.jq" "$root/examples/three-tier/config.json" >"$cfg"
    # vpcgate's own reading of the config for the benchmark's packet: a leg that
    # measured drops would measure nothing. (The CLI is optional here.)
    if [[ -x $bin/vpcgate ]]; then
        "$bin/vpcgate" trace --config "$cfg" --port internet --src "$client_ip" --dst "$web_ip" \
            --protocol udp --sport 1024 --dport "$udp_port" --output text >"$work/vpcgate-trace.txt" 2>&1 || true
        if ! grep -q '^ *verdict: forward' "$work/vpcgate-trace.txt"; then
            why="vpcgate trace does not forward the benchmark's packet: $(grep -m1 verdict "$work/vpcgate-trace.txt" || tail -1 "$work/vpcgate-trace.txt")"
            return 1
        fi
    fi
    # taskset puts the daemon (management thread and workers) on the DUT core; a
    # worker that pins itself elsewhere would override it, so say which core we meant.
    spawn "$ns_dut" taskset -c "$dut_core" "$bin/vpcgated" --config "$cfg" --state-dir "$state" \
        --socket "$state/api.sock" --reset >"$log" 2>&1
    dut_pid=$spawned
    local r=0
    wait_for_line "$log" '^vpcgated: ready' "$dut_pid" 30 || r=$?
    if (( r )); then
        why=$(grep -m1 '^vpcgated: ' "$log" || tail -1 "$log")
        (( r == 2 )) && why="vpcgated not ready after 30 s ($why)"
        return 1
    fi
    check_cores "$dut_pid" vpcgated
}
down_vpcgate() {
    # SIGTERM: vpcgated detaches its XDP programs on the way out.
    stop_pid "$dut_pid" 10
    dut_pid=
    dut_reset
}

up_nftables() {
    dst_mac=$router_mac
    # nftables:WHERE, a leg of its own, compares placements within one run.
    steer_rx "${leg_variant:-$nft_rx}" || return 1
    local nd=(ip -n "$ns_dut")
    "${nd[@]}" link set dev "$if_up" address "$router_mac"
    "${nd[@]}" addr add 198.19.0.1/24 dev "$if_up"
    "${nd[@]}" addr add 198.18.1.1/24 dev "$if_web"
    # The sink's AF_XDP socket takes every frame, ARP requests included, so the
    # router would never learn the web host's MAC: a permanent neighbour instead.
    "${nd[@]}" neigh replace "$web_ip" lladdr "$sink_mac" dev "$if_web" nud permanent
    "${nd[@]}" neigh replace "$client_ip" lladdr "$gen_mac" dev "$if_up" nud permanent
    ip netns exec "$ns_dut" sysctl -qw net.ipv4.ip_forward=1
    sed -e "s/@UPLINK@/$if_up/g; s/@WEB@/$if_web/g; s/@PORT@/$udp_port/g" \
        "$baselines/nftables.nft" >"$work/nftables.nft"
    if ! ip netns exec "$ns_dut" nft -f "$work/nftables.nft" 2>"$work/nft.log"; then
        why="nft refused the ruleset: $(head -3 "$work/nft.log")"
        return 1
    fi
}
down_nftables() {
    ip netns exec "$ns_dut" nft delete table inet vpcgate_bench 2>/dev/null || true
    ip -n "$ns_dut" neigh flush dev "$if_web" 2>/dev/null || true
    ip -n "$ns_dut" neigh flush dev "$if_up" 2>/dev/null || true
    dut_reset
}

# Open vSwitch runs from a private directory (database, sockets, logs, pid files),
# never the system's /var/run/openvswitch, and both daemons live in the DUT
# namespace: ovs-vswitchd opens AF_XDP ports by interface name in its own namespace,
# and the topology's teardown then ends them with the namespace.
ovs_dir=$work/ovs
ovs_vsctl() { ovs-vsctl --db="unix:$ovs_dir/db.sock" --timeout=20 "$@"; }
ovs_pids=()
up_ovs() {
    dst_mac=$router_mac
    rm -rf "$ovs_dir"
    mkdir -p "$ovs_dir"
    export OVS_RUNDIR=$ovs_dir OVS_LOGDIR=$ovs_dir OVS_DBDIR=$ovs_dir OVS_SYSCONFDIR=$ovs_dir
    ovsdb-tool create "$ovs_dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    # No --detach: a daemon that forks calls setsid() and would leave the autogroup
    # spawn gives it. Started in the background and watched through pids instead.
    ip netns exec "$ns_dut" taskset -c "$dut_core" ovsdb-server "$ovs_dir/conf.db" \
        --remote="punix:$ovs_dir/db.sock" --pidfile="$ovs_dir/ovsdb-server.pid" \
        --unixctl="$ovs_dir/ovsdb-server.ctl" --log-file="$ovs_dir/ovsdb-server.log" \
        >/dev/null 2>&1 &
    ovs_pids+=($!)
    local i
    for (( i = 0; i < 100; i++ )); do [[ -S $ovs_dir/db.sock ]] && break; sleep 0.1; done
    ovs_vsctl --no-wait init
    # The PMD thread (the one that polls the AF_XDP sockets and runs the datapath) on
    # the DUT core. No DPDK.
    ovs_vsctl --no-wait set Open_vSwitch . \
        "other_config:pmd-cpu-mask=0x$(printf '%x' $(( 1 << dut_core )))" other_config:dpdk-init=false
    spawn "$ns_dut" taskset -c "$dut_core" ovs-vswitchd "unix:$ovs_dir/db.sock" \
        --pidfile="$ovs_dir/ovs-vswitchd.pid" --unixctl="$ovs_dir/ovs-vswitchd.ctl" \
        --log-file="$ovs_dir/ovs-vswitchd.log" >/dev/null 2>&1
    ovs_pids+=("$spawned")
    # ovs-vsctl waits for ovs-vswitchd to apply each change, so the ports are bound
    # (AF_XDP sockets made, XDP programs attached) when these return.
    if ! ovs_vsctl add-br br0 -- set bridge br0 datapath_type=netdev \
        || ! ovs_vsctl add-port br0 "$if_up" -- set interface "$if_up" type=afxdp \
                "options:xdp-mode=$ovs_xdp_mode" ofport_request=1 \
        || ! ovs_vsctl add-port br0 "$if_web" -- set interface "$if_web" type=afxdp \
                "options:xdp-mode=$ovs_xdp_mode" ofport_request=2; then
        why="OVS did not take the AF_XDP ports: $(grep -m1 -E 'ERR|EMER' "$ovs_dir/ovs-vswitchd.log" || echo see log)"
        return 1
    fi
    local err
    err=$(ovs_vsctl --bare --columns=error list interface "$if_up" "$if_web" | tr -s '\n' ' ')
    if [[ -n ${err// /} ]]; then
        why="OVS port error: $err"
        return 1
    fi
    sed -e "s/@ROUTER_MAC@/$router_mac/g; s/@WEB_MAC@/$sink_mac/g; s/@GATEWAY_MAC@/$gen_mac/g; s/@PORT@/$udp_port/g" \
        "$baselines/ovs-flows.txt" >"$work/ovs-flows.txt"
    check_cores "$(cat "$ovs_dir/ovs-vswitchd.pid")" ovs-vswitchd
    # replace-flows also removes the bridge's default "normal" flow.
    if ! ovs-ofctl -O OpenFlow13 replace-flows br0 "$work/ovs-flows.txt" 2>"$work/ovs-ofctl.log"; then
        why="ovs-ofctl refused the flows: $(head -3 "$work/ovs-ofctl.log")"
        return 1
    fi
}
down_ovs() {
    if [[ -S $ovs_dir/db.sock ]]; then
        # Deleting the bridge closes the AF_XDP sockets and detaches the XDP programs
        # while ovs-vswitchd still runs; `exit --cleanup` alone returns before that
        # is done.
        ovs_vsctl del-br br0 2>/dev/null || true
        ovs-appctl -t "$ovs_dir/ovs-vswitchd.ctl" exit --cleanup 2>/dev/null || true
        ovs-appctl -t "$ovs_dir/ovsdb-server.ctl" exit 2>/dev/null || true
    fi
    local pid
    for pid in "${ovs_pids[@]}"; do stop_pid "$pid" 5; done
    ovs_pids=()
    # The netdev datapath's tap device, left behind in the namespace.
    ip -n "$ns_dut" link del ovs-netdev 2>/dev/null || true
    ip -n "$ns_dut" link del br0 2>/dev/null || true
    unset OVS_RUNDIR OVS_LOGDIR OVS_DBDIR OVS_SYSCONFDIR
    dut_reset
}

# --- Measuring ----------------------------------------------------------------------
# gen RATE SECONDS: one xdpgen run against the leg that is up; its JSON line goes to
# $work/gen.json. In the background and waited for, so that Ctrl-C is handled at once
# (bash runs a trap only after the foreground command ends); the exit trap ends it.
gen_pid=
gen() {
    local secs=$2
    : >"$work/gen.json"
    # timeout: a hung generator must not hang the benchmark.
    spawn "$ns_gen" timeout -s INT "$(awk -v d="$secs" 'BEGIN { print int(d + 30) }')" \
        "$bin/xdpgen" --tx "$if_gen" --rx "${rx_if:-$if_sink}" --rx-netns "${rx_ns:-$ns_sink}" \
        --core "$gen_core" --mode "$mode" --flows "$flows" "${size_args[@]}" \
        --src-ip "$client_ip" --dst-ip "$web_ip" --src-port 1024-65535 --dst-port "$udp_port" \
        --dst-mac "$dst_mac" --rate "$1" --duration "$secs" >"$work/gen.json" 2>>"$work/xdpgen.log"
    gen_pid=$spawned
    local rc=0
    wait "$gen_pid" || rc=$?
    gen_pid=
    [[ $rc == 0 && -s $work/gen.json ]]
}

# measure PHASE RATE LEG...: bring every available leg up in turn (a different leg first in
# each round, so that drift on a shared machine does not always hit the same one),
# warm it up, run the generator, take it down.
measure() {
    local phase=$1 pps=$2 round i leg line warm
    shift 2
    local order=("$@") n=$#
    for (( round = 1; round <= runs; round++ )); do
        for (( i = 0; i < n; i++ )); do
            leg=${order[$(( (i + round - 1) % n ))]}
            [[ -n ${unavailable[$leg]:-} ]] && continue
            current_leg=$leg
            # nftables:rps is the nftables leg with --nft-rx rps.
            leg_variant=
            if [[ $leg == *:* ]]; then leg_variant=${leg#*:}; fi
            why=
            if ! "up_${leg%%:*}"; then
                unavailable[$leg]=${why:-failed to start}
                log "$leg: not available: ${unavailable[$leg]}"
                "down_${leg%%:*}" || true
                current_leg=
                continue
            fi
            # A warm-up at a low rate: conntrack entries made, OVS megaflows installed,
            # and a check that this leg delivers at all before it is measured.
            warm=
            if gen 20000 1; then warm=$(<"$work/gen.json"); fi
            if [[ -z $warm ]] || ! jq -e '.received > 0.9 * .sent' <<<"$warm" >/dev/null; then
                unavailable[$leg]="delivered too little in the warm-up: ${warm:-generator failed, see $work/xdpgen.log}"
                log "$leg: ${unavailable[$leg]}"
                failed=1
                "down_${leg%%:*}" || true
                current_leg=
                continue
            fi
            if ! gen "$pps" "$duration"; then
                log "$phase $leg run $round: the generator failed (see $work/xdpgen.log)"
                failed=1
            elif ! dut_alive; then
                log "$phase $leg run $round: the DUT exited during the run; discarded (logs in $work)"
                failed=1
            else
                line=$(<"$work/gen.json")
                echo "$phase $leg $round $line" >>"$results"
                log "$phase $leg run $round: $(jq -r '"\(.mpps) Mpps, loss \(.loss), p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us"' <<<"$line")"
            fi
            "down_${leg%%:*}"
            current_leg=
            # A re-attach right after a detach can meet EBUSY (the notes); why race.
            sleep 0.5
        done
    done
}

# dut_alive: the processes of the leg that is up still run (a run in which the DUT
# died measures nothing but its death).
dut_alive() {
    local p
    for p in ${dut_pid:-} "${ovs_pids[@]}"; do
        kill -0 "$p" 2>/dev/null || return 1
    done
}

# field PHASE LEG JQ: the values of one field over a leg's runs, one a line.
field() {
    awk -v p="$1" -v l="$2" '$1 == p && $2 == l { $1 = $2 = $3 = ""; print }' "$results" | jq -r "$3"
}

# --- The run ------------------------------------------------------------------------
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $rate == max ]]; then
    log "throughput: flat out, $runs runs of ${duration}s per leg"
    measure tput 0 "${legs[@]}" nodut
    if [[ $lat_rate == auto ]]; then
        slowest=$(for leg in "${legs[@]}"; do field tput "$leg" .mpps | median; done | sort -g | head -1)
        [[ -n $slowest ]] || die "no leg delivered anything"
        # Half the slowest leg's median, rounded down to 10 kpps.
        lat_pps=$(awk -v m="$slowest" 'BEGIN { r = int(m * 1e6 / 2 / 1e4) * 1e4; print (r < 1e4) ? 1e4 : r }')
    else
        lat_pps=$lat_rate
    fi
    log "latency: $lat_pps frames/s, $runs runs of ${duration}s per leg"
    measure lat "$lat_pps" "${legs[@]}"
    lat_phase="lat"
else
    log "fixed rate $rate frames/s, $runs runs of ${duration}s per leg"
    # (No generator-alone gauge: at a fixed rate it would only measure the rate.)
    measure tput "$rate" "${legs[@]}"
    lat_pps=$rate
    lat_phase="tput"
fi

# --- Report -------------------------------------------------------------------------
fmt() { awk -v x="$1" -v d="${2:-3}" 'BEGIN { if (x == "") print "–"; else printf "%.*f\n", d, x }'; }
declare -A med=()
for leg in "${legs[@]}"; do med[$leg]=$(field tput "$leg" .mpps | median); done
# The nftables baseline: the fastest nftables leg (placement) of this run, so that a
# ratio against it is against the kernel at its best here.
nft_best=
for leg in "${legs[@]}"; do
    [[ $leg == nftables* && -n ${med[$leg]} ]] || continue
    if [[ -z $nft_best ]] || awk -v a="${med[$leg]}" -v b="${med[$nft_best]}" 'BEGIN { exit !(a > b) }'; then
        nft_best=$leg
    fi
done
ratio() { # ratio LEG BASE
    [[ -n $2 ]] || { echo "–"; return; }
    local a=${med[$1]:-} b=${med[$2]:-}
    [[ -n $a && -n $b ]] || { echo "–"; return; }
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f×\n", a / b }'
}

# The command line as typed, quoting only what needs it.
shown_command() {
    local a out="perf/bench-wire.sh"
    for a in "${orig_args[@]}"; do
        if [[ $a =~ ^[A-Za-z0-9_./,:=+-]+$ ]]; then out+=" $a"; else out+=" $(printf '%q' "$a")"; fi
    done
    echo "$out"
}

rate_words=$([[ $rate == max ]] && echo "flat out" || echo "at $rate frames/s")
cat <<EOF
### Wire benchmark, $started

- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $cores CPUs, $(uname -sr)
- load average (1/5/15 min) at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg): the machine
  is shared, and other work shows here
- command: \`$(shown_command)\`
- traffic: UDP $client_ip -> $web_ip:$udp_port, $flows flows, $frame frames; Mpps $rate_words,
  median of $runs runs of ${duration}s (min–max); latency at $lat_pps frames/s (medians of the
  runs' percentiles); generator on core $gen_core, DUT on core $dut_core, XDP mode $mode, AF_XDP rings $ring (vpcgate, xdpfwd), nftables forwarding on the $( [[ $nft_rx == sender ]] && echo "generator's core (--nft-rx sender)" || echo "DUT core (--nft-rx $nft_rx)")

| leg | frame | flows | Mpps delivered (median, min–max) | loss | latency p50 / p99 / p99.9 (µs) @ $(awk -v r="$lat_pps" 'BEGIN { printf "%g kpps", r / 1e3 }') | × xdpfwd | × nftables |
|---|---|---|---|---|---|---|---|
EOF
for leg in "${legs[@]}"; do
    if [[ -z ${med[$leg]} ]]; then
        reason=${unavailable[$leg]:-no result}
        [[ $leg == vpcgate && $reason == *"no AF_XDP dataplane"* ]] && reason="not available in this build ($reason)"
        echo "| $leg | $frame | $flows | ${reason//|/\\|} | | | | |"
        continue
    fi
    lo=$(field tput "$leg" .mpps | sort -g | head -1)
    hi=$(field tput "$leg" .mpps | sort -g | tail -1)
    loss=$(field tput "$leg" .loss | median)
    p50=$(field "$lat_phase" "$leg" '.latency_us.p50' | median)
    p99=$(field "$lat_phase" "$leg" '.latency_us.p99' | median)
    p999=$(field "$lat_phase" "$leg" '.latency_us."p99.9"' | median)
    printf '| %s | %s | %s | %s (%s–%s) | %s%% | %s / %s / %s | %s | %s |\n' \
        "$leg" "$frame" "$flows" "$(fmt "${med[$leg]}")" "$(fmt "$lo")" "$(fmt "$hi")" \
        "$(fmt "$(awk -v l="$loss" 'BEGIN { print l * 100 }')" 1)" \
        "$(fmt "$p50" 0)" "$(fmt "$p99" 0)" "$(fmt "$p999" 0)" \
        "$(ratio "$leg" xdpfwd)" "$(ratio "$leg" "$nft_best")"
done
if [[ -n ${med[vpcgate]:-} ]]; then
    echo
    echo "vpcgate target: ≥ 0.9× xdpfwd (got $(ratio vpcgate xdpfwd)), ≥ 1.3× nftables (got $(ratio vpcgate "$nft_best"))"
fi
if [[ -n $nft_best ]]; then
    echo
    echo "× nftables is against $nft_best, the fastest nftables leg of this run (nftables forwards" \
        "with --nft-rx $nft_rx; sender: on the generator's core, as veth does it; napi, rps: on the DUT core)."
fi
nodut=$(field tput nodut .mpps | median)
if [[ -n $nodut ]]; then
    echo
    echo "Generator alone (nothing forwarding, received on the DUT's ingress veth): $(fmt "$nodut") Mpps" \
        "($(fmt "$(field tput nodut .mpps | sort -g | head -1)")–$(fmt "$(field tput nodut .mpps | sort -g | tail -1)")): roughly the most any leg can deliver in this run, and a gauge of how fast the shared machine is right now."
fi
echo
echo "Per run (Mpps, in run order):"
for leg in "${legs[@]}" nodut; do
    v=$(field tput "$leg" .mpps | tr '\n' ' ')
    [[ -n $v ]] && echo "- ${leg/#nodut/generator alone}: $v"
done
# A leg that failed (not one that is merely unavailable) makes the run fail, after
# the table: the work directory with its logs is kept.
if (( failed )); then exit 1; fi
