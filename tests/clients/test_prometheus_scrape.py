"""vpcgate's Prometheus metrics read by the reference parser: the PyPI package
`prometheus-client` (`prometheus_client.parser.text_string_to_metric_families`).

- A running `vpcgated --no-dataplane` with `Appliance.Api.MetricsListen` on a loopback
  port is scraped over HTTP as Prometheus would: the answer parses, every family is a
  counter or a gauge with help text, values are finite numbers, labels are sane (the
  `eni` label names exactly the config's network interfaces), and the body is what
  `vpcgate stats --prometheus` prints.
- `vpcgate stats --prometheus` against a stand-in daemon answering `DescribeStats`
  with workers, queues and flow logs (there are no workers without a dataplane): the
  per-worker, per-hop, per-reason, per-queue and quantile samples parse and carry the
  numbers of the answer.
- A non-loopback `MetricsListen` keeps the daemon from starting, saying why.

Binaries: $VPCGATE_BIN_DIR, else the newest of target/release and target/debug, else
`cargo build -p mgmt --bins`.
"""

import json
import math
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
VPC = "vpc-00000000000000001"
ENIS = ["eni-0000000000000000a", "eni-0000000000000000b"]
HOPS = {"sg-egress", "nacl-egress", "nacl-ingress", "sg-ingress"}
REASONS = {"malformed", "not-ip", "unknown-source", "src-dst-check", "no-route", "conntrack-full",
           "fragment-orphan", "arp-ignored", "nd-ignored"}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def binaries():
    if os.environ.get("VPCGATE_BIN_DIR"):
        d = Path(os.environ["VPCGATE_BIN_DIR"])
        return d / "vpcgate", d / "vpcgated"
    found = [ROOT / "target" / p for p in ("release", "debug") if (ROOT / "target" / p / "vpcgated").exists()]
    if not found:
        subprocess.run(["cargo", "build", "-q", "-p", "mgmt", "--bins"], cwd=ROOT, check=True)
        found = [ROOT / "target" / "debug"]
    d = max(found, key=lambda p: (p / "vpcgated").stat().st_mtime)
    return d / "vpcgate", d / "vpcgated"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(listen):
    return {
        "Vpcs": [{"VpcId": VPC, "CidrBlock": "198.18.0.0/16", "OwnerId": "111122223333"}],
        "Subnets": [{"SubnetId": "subnet-00000000000000001", "VpcId": VPC, "CidrBlock": "198.18.1.0/24"}],
        "SecurityGroups": [{"GroupId": "sg-0000000000000000a", "GroupName": "web", "Description": "web", "VpcId": VPC,
                            "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                               "IpRanges": [{"CidrIp": "198.18.0.0/16"}]}],
                            "IpPermissionsEgress": []}],
        "NetworkInterfaces": [
            {"NetworkInterfaceId": eni, "SubnetId": "subnet-00000000000000001", "MacAddress": f"02:00:00:00:00:0{i + 1}",
             "PrivateIpAddress": f"198.18.1.{10 + i}", "Groups": [{"GroupId": "sg-0000000000000000a"}]}
            for i, eni in enumerate(ENIS)
        ],
        "Appliance": {"Api": {"MetricsListen": listen}},
    }


def wait_for(what, ok, proc=None, timeout=20):
    deadline = time.time() + timeout
    while not ok():
        if proc is not None:
            assert proc.poll() is None, f"vpcgated exited: {proc.stderr.read() if proc.stderr else ''}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def connects(family, address):
    try:
        with socket.socket(family) as s:
            s.settimeout(1)
            s.connect(address)
        return True
    except OSError:
        return False


@pytest.fixture
def daemon(tmp_path):
    vpcgate, vpcgated = binaries()
    port = free_port()
    initial = tmp_path / "initial.json"
    initial.write_text(json.dumps(config(f"127.0.0.1:{port}")))
    sock = tmp_path / "api.sock"
    proc = subprocess.Popen(
        [str(vpcgated), "--config", str(initial), "--state-dir", str(tmp_path / "state"), "--socket", str(sock),
         "--no-dataplane"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "VPCGATE_LOG": "error"},
    )
    wait_for("the API socket", lambda: connects(socket.AF_UNIX, str(sock)), proc)
    wait_for("the metrics port", lambda: connects(socket.AF_INET, ("127.0.0.1", port)), proc)

    def cli(*args):
        r = subprocess.run([str(vpcgate), *args, "--socket", str(sock)], capture_output=True, text=True)
        assert r.returncode == 0, f"vpcgate {args}: {r.stderr}"
        return r.stdout

    yield cli, f"http://127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(timeout=10) == 0, proc.stderr.read()


def scrape(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert r.status == 200
        return r.headers["Content-Type"], r.read().decode("utf-8")


def samples(text):
    """Parses `text` with prometheus-client; checks every family; returns
    {sample name: [(labels, value)]}."""
    out = {}
    families = list(text_string_to_metric_families(text))
    assert families, "no metric families"
    for f in families:
        assert f.name.startswith("vpcgate_"), f.name
        assert f.type in ("counter", "gauge"), (f.name, f.type)
        assert f.documentation, f"{f.name} has no HELP"
        for s in f.samples:
            # The parser gives ints for integral values, floats otherwise.
            assert isinstance(s.value, (int, float)) and not isinstance(s.value, bool), s
            assert math.isfinite(s.value), s
            assert s.value >= 0, s
            for k, v in s.labels.items():
                assert LABEL_NAME.match(k), s
                assert v == v.strip() and "\n" not in v, s
            if f.type == "counter":
                assert s.name == f.name + "_total", s
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_scrape_parses_with_the_reference_parser(daemon):
    cli, url = daemon
    content_type, body = scrape(url)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    got = samples(body)
    declared = {f.name for f in text_string_to_metric_families(body)}
    for family in ["vpcgate_frames", "vpcgate_forwarded", "vpcgate_rejected", "vpcgate_dropped",
                   "vpcgate_conntrack_entries", "vpcgate_batch_latency_seconds", "vpcgate_eni_in_packets",
                   "vpcgate_eni_out_packets", "vpcgate_conntrack_allowance_exceeded",
                   "vpcgate_conntrack_allowance_available", "vpcgate_flowlog_records_written"]:
        assert family in declared, f"{family} not in {sorted(declared)}"
    # Per-ENI samples name exactly the config's interfaces, and nothing moved.
    for name in ["vpcgate_eni_in_packets_total", "vpcgate_eni_out_packets_total", "vpcgate_eni_rejected_in_total",
                 "vpcgate_conntrack_allowance_available"]:
        assert sorted(labels["eni"] for labels, _ in got[name]) == ENIS, name
        assert all(set(labels) == {"eni"} and v == 0.0 for labels, v in got[name]), got[name]
    # No workers without a dataplane: the per-worker families are declared, empty.
    assert "vpcgate_frames_total" not in got


def test_scrape_is_what_the_cli_prints(daemon):
    cli, url = daemon
    assert scrape(url)[1] == cli("stats", "--prometheus")


def test_other_paths_and_methods(daemon):
    _, url = daemon
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "/nope", timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url + "/metrics", data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405
    assert e.value.headers["Allow"] == "GET, HEAD"


def worker(i, k):
    """A worker entry of DescribeStats, its counters scaled by k."""
    q = lambda p50, p99, p999, mx: {"p50": p50, "p99": p99, "p999": p999, "max": mx, "count": 100}
    return {
        "Worker": i, "Core": 2 + i,
        "Verdicts": {"Frames": 1000 * k, "Bytes": 64000 * k, "Forwarded": 900 * k, "Replied": 1 * k,
                     "Untracked": 5 * k, "FlowCacheHits": 800 * k,
                     "Rejected": {h: (7 * k if h == "sg-ingress" else 0) for h in sorted(HOPS)},
                     "Dropped": {r: (3 * k if r == "no-route" else 0) for r in sorted(REASONS)},
                     "Malformed": {"ipv4": 0, "tcp": 2 * k}},
        "ConntrackEntries": 100 * k, "ConntrackCapacity": 262144,
        "HandoffOut": 4 * k, "HandoffIn": 6 * k, "HandoffDropped": 0, "Batches": 50 * k,
        "BatchSize": q(16, 32, 64, 64), "BatchNanos": q(20000, 45000, 90000, 120000),
        "FlowRecordsSent": 11 * k, "FlowRecordsSkipped": 0,
        "Queues": [{"Port": f"p{i}", "Queue": 0, "RxPackets": 500 * k, "RxBytes": 32000 * k, "TxPackets": 450 * k,
                    "TxBytes": 30000 * k, "RxDropped": k}],
    }


@pytest.fixture
def standin(tmp_path):
    """A socket answering DescribeStats with two workers, ENIs and a flow log."""
    doc = {
        "Totals": worker(0, 3)["Verdicts"],
        "Workers": [worker(0, 1), worker(1, 2)],
        "NetworkInterfaces": [
            {"NetworkInterfaceId": eni, "OutPackets": 10, "OutBytes": 1000, "InPackets": 20, "InBytes": 2000,
             "RejectedOut": 1, "RejectedIn": 2, "ConntrackEntries": 5, "conntrack_allowance_exceeded": 0,
             "conntrack_allowance_available": 65531, "srcdst_check_dropped": 0}
            for eni in ENIS
        ],
        "FlowLogs": [{"FlowLogId": "fl-0a000000000000001", "RecordsWritten": 30, "RecordsSkipped": 1, "Files": 2,
                      "Bytes": 4096, "Errors": 0, "LastError": None}],
        "TopFlows": [],
        "SampledAt": int(time.time() * 1e9),
    }
    path = tmp_path / "standin.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.makefile().readline()
                conn.sendall((json.dumps(doc) + "\n").encode())

    threading.Thread(target=serve, daemon=True).start()
    yield path, doc
    server.close()


def test_worker_families_parse_and_carry_the_numbers(standin):
    path, doc = standin
    vpcgate, _ = binaries()
    r = subprocess.run([str(vpcgate), "stats", "--prometheus", "--socket", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = samples(r.stdout)

    def value(name, **labels):
        hits = [v for l, v in got[name] if all(l.get(k) == str(x) for k, x in labels.items())]
        assert len(hits) == 1, (name, labels, got.get(name))
        return hits[0]

    for w in doc["Workers"]:
        i, v = w["Worker"], w["Verdicts"]
        assert value("vpcgate_frames_total", worker=i) == v["Frames"]
        assert value("vpcgate_bytes_total", worker=i) == v["Bytes"]
        assert value("vpcgate_flow_cache_hits_total", worker=i) == v["FlowCacheHits"]
        assert value("vpcgate_forwarded_total", worker=i) == v["Forwarded"]
        assert value("vpcgate_untracked_total", worker=i) == v["Untracked"]
        assert value("vpcgate_worker_info", worker=i, core=w["Core"]) == 1
        for hop in HOPS:
            assert value("vpcgate_rejected_total", worker=i, hop=hop) == v["Rejected"][hop]
        for reason in REASONS:
            assert value("vpcgate_dropped_total", worker=i, reason=reason) == v["Dropped"][reason]
        assert value("vpcgate_malformed_total", worker=i, detail="tcp") == v["Malformed"]["tcp"]
        assert value("vpcgate_handoff_in_total", worker=i) == w["HandoffIn"]
        assert value("vpcgate_conntrack_entries", worker=i) == w["ConntrackEntries"]
        assert value("vpcgate_batch_latency_seconds", worker=i, quantile="0.99") == pytest.approx(45e-6)
        assert value("vpcgate_batch_size_frames", worker=i, quantile="0.5") == 16
        q = w["Queues"][0]
        assert value("vpcgate_port_rx_packets_total", port=q["Port"], queue=0) == q["RxPackets"]
        assert value("vpcgate_port_rx_dropped_total", port=q["Port"], queue=0) == q["RxDropped"]
    for labels, _ in got["vpcgate_rejected_total"]:
        assert set(labels) == {"worker", "hop"} and labels["hop"] in HOPS, labels
    for labels, _ in got["vpcgate_dropped_total"]:
        assert set(labels) == {"worker", "reason"} and labels["reason"] in REASONS, labels
    for labels, _ in got["vpcgate_batch_latency_seconds"]:
        assert 0 < float(labels["quantile"]) < 1, labels
    assert value("vpcgate_flowlog_records_written_total", flow_log="fl-0a000000000000001") == 30
    assert value("vpcgate_flowlog_bytes_total", flow_log="fl-0a000000000000001") == 4096
    assert value("vpcgate_conntrack_allowance_available", eni=ENIS[1]) == 65531


def test_a_non_loopback_listener_is_refused(tmp_path):
    _, vpcgated = binaries()
    initial = tmp_path / "initial.json"
    initial.write_text(json.dumps(config("0.0.0.0:9464")))
    r = subprocess.run(
        [str(vpcgated), "--config", str(initial), "--state-dir", str(tmp_path / "state"), "--socket",
         str(tmp_path / "api.sock"), "--no-dataplane"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 1
    assert "Appliance.Api.MetricsListen" in r.stderr and "not a loopback address" in r.stderr, r.stderr
