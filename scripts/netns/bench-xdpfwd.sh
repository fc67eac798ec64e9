#!/usr/bin/env bash
# Mpps of the bare AF_XDP forwarder (xdpfwd) between two veth-attached namespaces,
# driven by xdpgen: the ceiling any policy path is compared with.
#
# usage: bench-xdpfwd.sh [--runs N] [--duration S] [--mode auto|skb|driver]
#                        [--size B | --imix] [--flows N] [--no-ceiling] [--bin DIR]
#
#   --runs N      runs per measurement; the median is reported (default 3)
#   --duration S  seconds of traffic per run (default 5)
#   --mode M      XDP mode of the forwarder and the generator (default auto = SKB on veth)
#   --no-ceiling  skip the generator ceiling (xdpgen straight into the switch end,
#                 nothing forwarding)
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
fwd_pid=
cleanup() {
    if [[ -n $fwd_pid ]]; then
        kill "$fwd_pid" 2>/dev/null || true
        wait "$fwd_pid" 2>/dev/null || true
    fi
    topo down
}
trap cleanup EXIT
topo up --tx-off >/dev/null

gen() { # gen RX_IF RX_NS
    ip netns exec "${prefix}h1" "$bin/xdpgen" --tx "${prefix}h1" --rx "$1" --rx-netns "$2" \
        --duration "$duration" --core "$gen_core" --mode "$mode" --flows "$flows" \
        "${size_args[@]}" 2>/dev/null
}

mpps() { sed -n 's/.*"mpps":\([0-9.]*\).*/\1/p'; }

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

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
    ip netns exec "${prefix}sw" "$bin/xdpfwd" --a "${prefix}sa" --b "${prefix}sb" \
        --cores "$fwd_core" --mode "$mode" >"$log" 2>&1 &
    fwd_pid=$!
    for _ in $(seq 100); do
        grep -q '^xdpfwd: ready' "$log" && break
        kill -0 "$fwd_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    line=$(gen "${prefix}h2" "${prefix}h2")
    kill "$fwd_pid"
    wait "$fwd_pid" || true
    fwd_pid=
    echo "xdpfwd run $i: $line"
    echo "  xdpfwd: $(tail -1 "$log")"
    rm -f "$log"
    results+=("$(mpps <<<"$line")")
    # A re-attach right after a detach can meet EBUSY; xdpfwd retries, but why race.
    sleep 0.5
done

(( ceiling )) && echo "generator ceiling, median of $runs: $ceiling_median Mpps"
echo "xdpfwd ($mode), median of $runs: $(printf '%s\n' "${results[@]}" | median) Mpps"
