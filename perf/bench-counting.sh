#!/usr/bin/env bash
# What counting costs the dataplane: the single-core pipeline benchmark
# (perf/src/bin/pipeline-bench.rs, AWS-quota config: established flows, new flows,
# NACL denies) built twice, with the per-packet counters and top-flow sampling
# (dataplane::stats::COUNTED) compiled in and compiled out, run alternately so that
# drift on a shared machine falls on both alike. Prints medians and the cost per
# traffic kind, as markdown: from the per-frame time of the median batch (p50 ns/frame,
# which a preemption by another process does not move) and from the mean rate (Mpps,
# which it does: on a busy machine trust the first).
#
#   perf/bench-counting.sh [--rounds N]     (default 7 rounds of each binary)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=7
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/vpcgate-counting.XXXXXX)
trap 'rm -rf "$work"' EXIT
target=${CARGO_TARGET_DIR:-target}

echo "building the uncounted and the counted pipeline-bench (release)..." >&2
VPCGATE_UNCOUNTED=1 cargo build -q --release -p perf --bin pipeline-bench
cp "$target/release/pipeline-bench" "$work/uncounted"
cargo build -q --release -p perf --bin pipeline-bench
cp "$target/release/pipeline-bench" "$work/counted"

# One row per traffic kind: "| config | traffic | Mpps | p50 | p99 |".
for i in $(seq "$rounds"); do
  for variant in counted uncounted; do
    echo "round $i/$rounds: $variant" >&2
    "$work/$variant" --quota-only --runs 1 | awk -F'|' -v v="$variant" \
      'NR > 2 && NF > 4 { gsub(/^ +| +$/, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $5); print v "\t" $3 "\t" $4 "\t" $5 }' >>"$work/rates.tsv"
  done
done

python3 - "$work/rates.tsv" "$rounds" <<'EOF'
import statistics, sys
from collections import defaultdict
rates, p50 = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    variant, traffic, mpps, ns = line.rstrip("\n").split("\t")
    rates[(traffic, variant)].append(float(mpps))
    p50[(traffic, variant)].append(float(ns))
med = statistics.median
print(f"Medians of {sys.argv[2]} alternated rounds, AWS-quota config, 1 core.")
print()
print("| traffic | p50 ns/frame counted | uncounted | cost (p50) | Mpps counted | uncounted | cost (Mpps) |")
print("|---|---|---|---|---|---|---|")
for traffic in dict.fromkeys(t for t, _ in rates):
    pc, pu = med(p50[(traffic, "counted")]), med(p50[(traffic, "uncounted")])
    c, u = med(rates[(traffic, "counted")]), med(rates[(traffic, "uncounted")])
    print(f"| {traffic} | {pc:.0f} | {pu:.0f} | {100 * (pc / pu - 1):+.1f}% | {c:.2f} | {u:.2f} | {100 * (1 - c / u):+.1f}% |")
EOF
