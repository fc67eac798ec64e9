#!/usr/bin/env bash
# vpcgate's main job, for a fresh Debian machine (run as root): builds vpcgate, then
# shows the three-tier scenario (shared/spec/three-tier.md) decided exactly as AWS
# would: live, with real Linux hosts in network namespaces talking through vpcgate
# over AF_XDP; or, where AF_XDP cannot run, by replaying the checked-in captures.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VPCGATE_ROOT"

[ "$(id -u)" = 0 ] && install_debs
ensure_rust

say "building vpcgate (release)"
cargo build --release -q -p mgmt --bins
VPCGATE="$VPCGATE_ROOT/target/release/vpcgate"
SCENARIO="$VPCGATE_ROOT/examples/three-tier"

demo_replay() {
  say "three-tier scenario, replayed from captures through the same pipeline (no NIC needed)"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  python3 - "$VPCGATE" "$SCENARIO" "$tmp" <<'PY'
import json, subprocess, sys
vpcgate, scenario, tmp = sys.argv[1:4]
rows = json.load(open(f"{scenario}/scenario.json"))
print(f"{'#':>4}  {'attempt':<24} {'expected':<22} {'observed':<22} {'':2}  the decision that settled it (first packet)")
ok = True
for r in rows:
    out = f"{tmp}/{r['row']}.jsonl"
    subprocess.run([vpcgate, "replay", "--config", f"{scenario}/config.json", "--pcap", f"{scenario}/captures/{r['capture']}",
                    "--verdicts", out], check=True, stderr=subprocess.DEVNULL)
    v = [json.loads(l) for l in open(out)]
    if all(x["verdict"] == "forward" for x in v):
        observed, hop = "connects", "every packet forwarded"
    else:
        first = next(x for x in v if x["verdict"] != "forward")
        observed, hop = f"refused ({first['reason']})", first["reason"]
    expected = "connects" if r["expect"] == "connects" else f"refused ({r['hop']})"
    good = expected == observed
    ok &= good
    # the rule that decided the first packet, from vpcgate's own explanation
    explain = subprocess.run([vpcgate, "replay", "--config", f"{scenario}/config.json", "--pcap",
                              f"{scenario}/captures/{r['capture']}", "--explain"], capture_output=True, text=True).stdout
    first_frame = explain.split("frame 1:")[0].splitlines()
    decisive = [l.strip() for l in first_frame if l.strip().startswith(("sg-", "nacl-"))]
    why = decisive[-1] if decisive else hop
    print(f"{r['row']:>4}  {r['what']:<24} {expected:<22} {observed:<22} {'ok' if good else 'XX'}  {why[:100]}")
print()
print("all rows as expected" if ok else "SOME ROWS DIFFER")
sys.exit(0 if ok else 1)
PY
}

# AF_XDP needs root, a kernel with XDP sockets and network namespaces.
can_go_live() {
  [ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
  ip netns list >/dev/null 2>&1 || { echo "no network namespaces"; return 1; }
  grep -q "CONFIG_XDP_SOCKETS=y" "/boot/config-$(uname -r)" 2>/dev/null || [ -e /proc/sys/net/core/bpf_jit_enable ] || { echo "no AF_XDP"; return 1; }
  return 0
}

if why=$(can_go_live); then
  say "three-tier scenario, live: real hosts in network namespaces, vpcgated on AF_XDP"
  if python3 "$VPCGATE_ROOT/scripts/netns/scenario.py" --bin-dir "$VPCGATE_ROOT/target/release"; then
    echo
    say "the same scenario from the checked-in captures (what the live run should match)"
    demo_replay
  else
    status=$?
    echo "the live run did not complete (exit $status); showing the capture replay instead" >&2
    demo_replay
    exit $status
  fi
else
  echo "AF_XDP cannot run here ($why): showing the scenario through 'vpcgate replay' of the checked-in captures"
  demo_replay
fi
