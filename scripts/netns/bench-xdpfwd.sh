#!/usr/bin/env bash
# Mpps of the bare AF_XDP forwarder (xdpfwd) between two veth-attached namespaces,
# driven by xdpgen: the ceiling any policy path is compared with.
#
# usage: bench-xdpfwd.sh [--runs N] [--duration S] [--mode auto|skb|driver]
#                        [--size B | --imix] [--flows N] [--no-ceiling] [--no-trafgen]
#                        [--no-prio] [--bin DIR]
#
#   --runs N      runs per measurement; the median is reported (default 3)
#   --duration S  seconds of traffic per run (default 5)
#   --mode M      XDP mode of the forwarder and the generator (default auto = SKB on veth)
#   --no-ceiling  skip the generator ceiling (xdpgen straight into the switch end,
#                 nothing forwarding)
#   --no-trafgen  skip the calibration run: trafgen (netsniff-ng), one process on the
#                 generator's core, frames sent per second with nothing forwarding.
#                 It tells how fast this machine is right now compared with others.
#   --no-prio     run at normal priority. By default the tools run in their own
#                 session with autogroup nice -20, so that builds in other sessions
#                 (autogroups make plain nice meaningless across sessions) do not take
#                 the benchmark's cores.
#   --bin DIR     where xdpfwd and xdpgen are (default target/release; built if missing)
#
# The generator is pinned to the first core, the forwarder to the last. Each run prints
# xdpgen's JSON line; the last lines are the medians. Uses its own vgx-b<pid>-
# namespaces, removed on exit however the script ends.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=3
duration=5
mode=auto
size_args=(--size 64)
flows=64
ceiling=1
calibrate=1
prio=1
bin=$root/target/release
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --size) size_args=(--size "$2"); shift 2 ;;
        --imix) size_args=(--imix); shift ;;
        --flows) flows=$2; shift 2 ;;
        --no-ceiling) ceiling=0; shift ;;
        --no-trafgen) calibrate=0; shift ;;
        --no-prio) prio=0; shift ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "bench-xdpfwd.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ ! -x $bin/xdpfwd || ! -x $bin/xdpgen ]]; then
    (cd "$root" && cargo build --release -p perf --bin xdpfwd --bin xdpgen)
fi

cores=$(nproc)
gen_core=0
fwd_core=$((cores - 1))
prefix=vgx-b$(( $$ % 100000 ))-
topo() { "$here/topo.sh" "$@" --prefix "$prefix"; }
# `down` also ends whatever still runs in the namespaces (a forwarder).
trap 'topo down' EXIT
topo up --tx-off >/dev/null

run() { # run NS PROGRAM ARGS...: inside namespace NS, with priority unless --no-prio
    local ns=$1
    shift
    if (( prio )) && [[ -e /proc/self/autogroup ]]; then
        setsid -w bash -c 'echo -20 >/proc/self/autogroup; exec ip netns exec "$@"' _ "$ns" "$@"
    else
        ip netns exec "$ns" "$@"
    fi
}

gen() { # gen RX_IF RX_NS
    run "${prefix}h1" "$bin/xdpgen" --tx "${prefix}h1" --rx "$1" --rx-netns "$2" \
        --duration "$duration" --core "$gen_core" --mode "$mode" --flows "$flows" \
        "${size_args[@]}" 2>/dev/null
}

mpps() { sed -n 's/.*"mpps":\([0-9.]*\).*/\1/p'; }

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

tx_packets() {
    ip -n "${prefix}h1" -s link show "${prefix}h1" | awk '/TX:/ { getline; print $2 }'
}

trafgen_mpps=
if (( calibrate )) && command -v trafgen >/dev/null; then
    mac() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }
    conf=$(mktemp)
    # To an address nobody has: the switch end drops it and nothing answers.
    printf '{ eth(da=%s, sa=%s, type=0x0800), ipv4(saddr=198.18.0.1, daddr=198.18.0.99, ttl=64), udp(sport=dinc(1024, %d), dport=9), fill(0x00, 18) }\n' \
        "$(mac "${prefix}sw" "${prefix}sa")" "$(mac "${prefix}h1" "${prefix}h1")" \
        $((1023 + flows)) >"$conf"
    before=$(tx_packets)
    run "${prefix}h1" taskset -c "$gen_core" timeout -s INT "$duration" \
        trafgen --dev "${prefix}h1" --conf "$conf" -P 1 -q >/dev/null 2>&1 || true
    after=$(tx_packets)
    rm -f "$conf"
    trafgen_mpps=$(awk -v n=$((after - before)) -v s="$duration" 'BEGIN { printf "%.3f", n / s / 1e6 }')
    echo "trafgen calibration: $trafgen_mpps Mpps sent, nothing forwarding"
fi

if (( ceiling )); then
    results=()
    for i in $(seq "$runs"); do
        line=$(gen "${prefix}sa" "${prefix}sw")
        echo "ceiling run $i: $line"
        results+=("$(mpps <<<"$line")")
    done
    ceiling_median=$(printf '%s\n' "${results[@]}" | median)
fi

results=()
for i in $(seq "$runs"); do
    log=$(mktemp)
    run "${prefix}sw" "$bin/xdpfwd" --a "${prefix}sa" --b "${prefix}sb" \
        --cores "$fwd_core" --mode "$mode" >"$log" 2>&1 &
    launcher=$!
    for _ in $(seq 100); do
        grep -q '^xdpfwd: ready' "$log" && break
        kill -0 "$launcher" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    line=$(gen "${prefix}h2" "${prefix}h2")
    # The forwarder is the only process in the switch namespace.
    for pid in $(ip netns pids "${prefix}sw"); do kill "$pid"; done
    wait "$launcher" || true
    echo "xdpfwd run $i: $line"
    echo "  xdpfwd: $(tail -1 "$log")"
    rm -f "$log"
    results+=("$(mpps <<<"$line")")
    # A re-attach right after a detach can meet EBUSY; xdpfwd retries, but why race.
    sleep 0.5
done

[[ -n $trafgen_mpps ]] && echo "trafgen calibration: $trafgen_mpps Mpps"
(( ceiling )) && echo "generator ceiling, median of $runs: $ceiling_median Mpps"
echo "xdpfwd ($mode), median of $runs: $(printf '%s\n' "${results[@]}" | median) Mpps"
