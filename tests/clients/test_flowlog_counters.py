"""The flow logs and the switch's own counters tell the same story.

A capture of the three-tier scenario's hosts talking (TCP, UDP with fragments, ICMP;
between ENIs, to and from the internet; accepted, refused at every hop; plus ARP,
malformed, spoofed and unroutable frames, which are neither counted nor logged) is
built here, byte by byte, and replayed through the real pipeline:

    vpcgate replay --config C --pcap P --flow-log-root DIR --verdicts V --stats S

with flow logs on every ENI (TrafficType ALL) as gzip text (one flow log on the VPC)
and as Parquet (one flow log per subnet). Then, per ENI, flow direction and action,
three accounts of packets and bytes must be equal:

- DuckDB's sums over our gzip text files, and over our Parquet files;
- the switch's counters (`--stats`, DescribeStats' `NetworkInterfaces`: OutPackets,
  InPackets, RejectedOut, RejectedIn and their bytes);
- this file's own account, from each frame's verdict (`--verdicts`) and spec 7's
  attribution: a frame from ENI A to ENI B counts at A (egress) and at B (ingress);
  refused at A's egress hops it is REJECT egress at A and nothing at B; refused at B's
  ingress hops it is ACCEPT egress at A and REJECT ingress at B; bytes are IP bytes.
"""

import gzip
import json
import os
import random
import shutil
import struct
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "three-tier" / "config.json"

ROUTER_MAC = "02:76:70:63:67:01"
GATEWAY_MAC = "02:00:00:00:ff:01"
# 2026-11-22T00:03:30Z: the capture crosses minute and 5-minute (file) boundaries.
T0_US = 1_795_305_810_000_000
SPAN_S = 200

VPC = "vpc-0f00d000000000001"
SUBNETS = ["subnet-0f00d0000000000a1", "subnet-0f00d0000000000a2", "subnet-0f00d0000000000a3"]
APP_SG = "sg-0f00d00000000e002"
WEB_SG = "sg-0f00d00000000e001"
APP_NACL = "acl-0f00d00000000c000"

# host: (port, mac, ip); the ENIs behind each port come from the config.
HOSTS = {
    "web": ("web", "02:00:00:00:01:0a", "198.18.1.10"),
    "bastion": ("bastion", "02:00:00:00:01:14", "198.18.1.20"),
    "app": ("app", "02:00:00:00:02:0a", "198.18.2.10"),
    "db": ("db", "02:00:00:00:03:0a", "198.18.3.10"),
}

FIELDS = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} "
    "${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${flow-direction} ${traffic-path} "
    "${pkt-srcaddr} ${pkt-dstaddr} ${tcp-flags}"
)


# --- frames -----------------------------------------------------------------------


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident, frag_off=0, more=False):
    total = 20 + len(payload)
    flags = (0x2000 if more else 0) | (frag_off // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, flags, 64, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def l4_csum(src, dst, proto, seg):
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, len(seg))
    return csum(pseudo + seg)


def tcp(src, dst, sport, dport, flags, seq, ack, data):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    c = l4_csum(src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = l4_csum(src, dst, 17, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def icmp_echo(ident, seq, reply, data):
    msg = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + data
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def ether(src_mac, dst_mac, payload, ethertype=0x0800):
    frame = mac(dst_mac) + mac(src_mac) + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))  # padding is not IP bytes


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


class Capture:
    """Frames as they arrive at the appliance: (time us, port, frame, ip length)."""

    def __init__(self, rng):
        self.rng = rng
        self.frames = []
        self.ident = 1

    def add(self, t, port, frame, ip_len):
        self.frames.append((t, port, frame, ip_len))

    def ip(self, t, side, dst_ip, proto, payload, frag_at=None):
        port, src_mac, src_ip = side
        self.ident = (self.ident + 1) & 0xFFFF
        if frag_at is None:
            packet = ipv4(src_ip, dst_ip, proto, payload, self.ident)
            self.add(t, port, ether(src_mac, ROUTER_MAC, packet), len(packet))
            return
        # Fragments of `frag_at` bytes (a multiple of 8), first one first.
        for off in range(0, len(payload), frag_at):
            chunk = payload[off : off + frag_at]
            more = off + frag_at < len(payload)
            packet = ipv4(src_ip, dst_ip, proto, chunk, self.ident, off, more)
            self.add(t + off // frag_at, port, ether(src_mac, ROUTER_MAC, packet), len(packet))

    def write_pcapng(self, path, ports):
        self.frames.sort(key=lambda f: f[0])
        ids = {p: i for i, p in enumerate(ports)}

        def block(kind, body):
            body += b"\0" * (-len(body) % 4)
            n = 12 + len(body)
            return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

        def option(code, value):
            return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

        out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
        for p in ports:
            out.append(block(1, struct.pack("<HHI", 1, 0, 0) + option(2, p.encode()) + option(0, b"")))
        for t, port, frame, _ in self.frames:
            out.append(block(6, struct.pack("<IIIII", ids[port], t >> 32, t & 0xFFFFFFFF, len(frame), len(frame)) + frame))
        Path(path).write_bytes(b"".join(out))


def internet(ip):
    return ("internet", GATEWAY_MAC, ip)


def host(name):
    return HOSTS[name]


def payload(rng, big=False):
    n = rng.choice([0, 0, 6, 48, 200, 512, 1200, 1400]) if not big else rng.randrange(1500, 4000)
    return bytes(rng.randrange(256) for _ in range(n))


def tcp_flow(cap, t, a, b, dport, answered, rng):
    """A connection from a to b (answered: handshake, data both ways, FINs), or a SYN
    that gets no answer, retried."""
    sport = rng.randrange(32768, 61000)
    (_, _, aip), (_, _, bip) = a, b
    seq_a, seq_b = rng.randrange(1 << 32), rng.randrange(1 << 32)
    step = lambda: rng.randrange(1, 400) * 1000

    def send(side, dst, sp, dp, flags, seq, ack, data=b""):
        nonlocal t
        cap.ip(t, side, dst, 6, tcp(side[2], dst, sp, dp, flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, data))
        t += step()

    if not answered:
        for _ in range(rng.randrange(1, 4)):
            send(a, bip, sport, dport, SYN, seq_a, 0)
            t += 1_000_000
        return
    send(a, bip, sport, dport, SYN, seq_a, 0)
    send(b, aip, dport, sport, SYN | ACK, seq_b, seq_a + 1)
    send(a, bip, sport, dport, ACK, seq_a + 1, seq_b + 1)
    for _ in range(rng.randrange(0, 8)):
        if rng.random() < 0.5:
            d = payload(rng)
            send(a, bip, sport, dport, ACK | PSH, seq_a + 1, seq_b + 1, d)
        else:
            d = payload(rng)
            send(b, aip, dport, sport, ACK | PSH, seq_b + 1, seq_a + 1, d)
    send(a, bip, sport, dport, FIN | ACK, seq_a + 1, seq_b + 1)
    send(b, aip, dport, sport, FIN | ACK, seq_b + 1, seq_a + 2)
    send(a, bip, sport, dport, ACK, seq_a + 2, seq_b + 2)


def udp_flow(cap, t, a, b, dport, rng, sport=None, fragments=False):
    sport = sport or rng.randrange(32768, 61000)
    for _ in range(rng.randrange(1, 5)):
        big = fragments and rng.random() < 0.5
        d = payload(rng, big)
        cap.ip(t, a, b[2], 17, udp(a[2], b[2], sport, dport, d), frag_at=1480 if big else None)
        t += rng.randrange(1, 300) * 1000
        cap.ip(t, b, a[2], 17, udp(b[2], a[2], dport, sport, payload(rng)))
        t += rng.randrange(1, 2000) * 1000


def ping(cap, t, a, b, answered, rng):
    ident = rng.randrange(1, 65536)
    for seq in range(rng.randrange(1, 5)):
        d = payload(rng)
        cap.ip(t, a, b[2], 1, icmp_echo(ident, seq, False, d))
        if answered:
            cap.ip(t + 500, b, a[2], 1, icmp_echo(ident, seq, True, d))
        t += 1_000_000


def client_ip(rng):
    while True:
        third = rng.randrange(0, 256)
        if third != 66:  # 198.19.66.0/24 is the attacker's
            return f"198.19.{third}.{rng.randrange(1, 255)}"


def build_capture(seed):
    rng = random.Random(seed)
    cap = Capture(rng)
    web, bastion, app, db = host("web"), host("bastion"), host("app"), host("db")
    kinds = [
        lambda t: tcp_flow(cap, t, internet(client_ip(rng)), web, rng.choice([80, 443]), True, rng),
        lambda t: tcp_flow(cap, t, internet(f"203.0.113.{rng.randrange(1, 255)}"), bastion, 22, True, rng),
        lambda t: tcp_flow(cap, t, internet(f"203.0.113.{rng.randrange(1, 255)}"), web, 22, False, rng),
        lambda t: tcp_flow(cap, t, bastion, db, 22, True, rng),
        lambda t: tcp_flow(cap, t, bastion, web, 22, True, rng),  # same subnet: no NACL
        lambda t: tcp_flow(cap, t, web, app, 8080, True, rng),
        lambda t: tcp_flow(cap, t, web, app, 22, False, rng),  # refused at app's SG: left web
        lambda t: tcp_flow(cap, t, web, db, 3306, False, rng),  # refused at web's SG egress
        lambda t: tcp_flow(cap, t, app, db, 3306, True, rng),
        lambda t: tcp_flow(cap, t, internet(f"198.19.66.{rng.randrange(1, 255)}"), web, 80, False, rng),
        lambda t: tcp_flow(cap, t, db, internet(client_ip(rng)), 443, False, rng),
        lambda t: tcp_flow(cap, t, app, internet(client_ip(rng)), 443, True, rng),
        lambda t: ping(cap, t, internet(client_ip(rng)), web, True, rng),  # public NACL: no ICMP
        lambda t: ping(cap, t, internet(client_ip(rng)), app, True, rng),
        lambda t: ping(cap, t, web, app, True, rng),  # app's SG takes ICMP from the internet only
        lambda t: ping(cap, t, bastion, app, True, rng),  # bastion's SG sends only tcp/22
        # Replies to web ports 40000-40999 are refused by the app subnet's NACL egress.
        lambda t: udp_flow(cap, t, web, app, 5353, rng, sport=rng.choice([rng.randrange(40000, 41000), None])),
        lambda t: udp_flow(cap, t, internet(client_ip(rng)), app, 53, rng, fragments=True),
        lambda t: udp_flow(cap, t, internet(client_ip(rng)), web, 514, rng),  # public NACL: TCP only
    ]
    for i in range(600):
        kinds[i % len(kinds)](T0_US + rng.randrange(0, SPAN_S * 1_000_000))
    # Frames that reach no policy decision: neither counted at an ENI nor logged.
    t = T0_US + 5_000_000
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(web[1]), ip4(web[2]), b"\0" * 6, ip4("198.18.1.1"))
    cap.add(t, "web", ether(web[1], "ff:ff:ff:ff:ff:ff", arp, 0x0806), 0)
    cap.ip(t + 1, web, "198.18.1.99", 17, udp(web[2], "198.18.1.99", 1, 2, b"x"))  # no-route
    cap.ip(t + 2, ("web", web[1], "198.18.1.77"), app[2], 6, tcp("198.18.1.77", app[2], 1, 8080, SYN, 1, 0, b""))
    cap.ip(t + 3, ("web", "02:00:00:00:01:99", web[2]), app[2], 6, tcp(web[2], app[2], 1, 8080, SYN, 1, 0, b""))
    bad = bytearray(ether(web[1], ROUTER_MAC, ipv4(web[2], app[2], 6, b"\0" * 20, 9)))
    bad[14] = 0x44  # IHL 4: malformed
    cap.add(t + 4, "web", bytes(bad), 0)
    return cap


# --- config ------------------------------------------------------------------------


def config(tmp):
    cfg = json.loads(CONFIG.read_text())
    for g in cfg["SecurityGroups"]:
        if g["GroupId"] == APP_SG:
            g["IpPermissions"] += [
                {"IpProtocol": "udp", "FromPort": 5353, "ToPort": 5353,
                 "UserIdGroupPairs": [{"GroupId": WEB_SG, "UserId": "123456789012"}]},
                {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "198.19.0.0/16"}]},
                {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "198.19.0.0/16"}]},
            ]
    for a in cfg["NetworkAcls"]:
        if a["NetworkAclId"] == APP_NACL:
            a["Entries"].append({"RuleNumber": 90, "Protocol": "17", "RuleAction": "deny", "Egress": True,
                                 "CidrBlock": "198.18.1.0/24", "PortRange": {"From": 40000, "To": 40999}})
    text = {"FlowLogId": "fl-0c0ffee0000000001", "ResourceId": VPC, "TrafficType": "ALL",
            "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::counters/text",
            "LogFormat": FIELDS, "MaxAggregationInterval": 60}
    parquet = [
        {"FlowLogId": f"fl-0c0ffee000000001{i}", "ResourceId": s, "TrafficType": "ALL",
         "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::counters/parquet",
         "LogFormat": FIELDS, "MaxAggregationInterval": 60, "DestinationOptions": {"FileFormat": "parquet"}}
        for i, s in enumerate(SUBNETS)
    ]
    cfg["FlowLogs"] = [text] + parquet
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg, indent=1))
    return cfg, path


def vpcgate():
    if os.environ.get("VPCGATE_BIN"):
        return [os.environ["VPCGATE_BIN"]]
    return ["cargo", "run", "-q", "--release", "-p", "mgmt", "--bin", "vpcgate", "--"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("counters")
    cfg, cfg_path = config(tmp)
    cap = build_capture(int(os.environ.get("VPCGATE_COUNTERS_SEED", "7")))
    ports = [p["Name"] for p in cfg["Appliance"]["Ports"]]
    cap.write_pcapng(tmp / "mix.pcapng", ports)
    root = tmp / "logs"
    proc = subprocess.run(
        vpcgate() + ["replay", "--config", str(cfg_path), "--pcap", str(tmp / "mix.pcapng"),
                     "--flow-log-root", str(root), "--verdicts", str(tmp / "verdicts.jsonl"),
                     "--stats", str(tmp / "stats.json")],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(l) for l in (tmp / "verdicts.jsonl").read_text().splitlines()]
    stats = json.loads((tmp / "stats.json").read_text())
    yield {"cfg": cfg, "cap": cap, "root": root, "verdicts": verdicts, "stats": stats}
    shutil.rmtree(tmp, ignore_errors=True)


# --- the three accounts -----------------------------------------------------------


def by_spec(run):
    """(eni, direction, action) -> [packets, bytes], from verdicts and spec 7."""
    cfg, frames, verdicts = run["cfg"], run["cap"].frames, run["verdicts"]
    assert len(verdicts) == len(frames)
    eni_of_port = {p["Name"]: (p.get("NetworkInterfaceIds") or [None])[0] for p in cfg["Appliance"]["Ports"]}
    eni_of_ip = {e["PrivateIpAddress"]: e["NetworkInterfaceId"] for e in cfg["NetworkInterfaces"]}
    out = defaultdict(lambda: [0, 0])

    def count(eni, direction, action, n):
        if eni:
            out[(eni, direction, action)][0] += 1
            out[(eni, direction, action)][1] += n

    for (t, port, frame, ip_len), v in zip(frames, verdicts):
        assert v["ingress_port"] == port
        if v["verdict"] not in ("forward", "reject"):
            continue
        src = eni_of_port[port]
        dst = eni_of_ip.get(".".join(str(b) for b in frame[30:34]))
        if v["verdict"] == "forward":
            assert eni_of_port[v["egress_port"]] == dst
            count(src, "egress", "ACCEPT", ip_len)
            count(dst, "ingress", "ACCEPT", ip_len)
        elif v["reason"] in ("sg-egress", "nacl-egress"):
            count(src, "egress", "REJECT", ip_len)
        else:
            count(src, "egress", "ACCEPT", ip_len)
            count(dst, "ingress", "REJECT", ip_len)
    return {k: tuple(v) for k, v in out.items()}


def by_counters(stats):
    out = {}
    for e in stats["NetworkInterfaces"]:
        eni = e["NetworkInterfaceId"]
        for key, p, b in [(("egress", "ACCEPT"), "OutPackets", "OutBytes"),
                          (("ingress", "ACCEPT"), "InPackets", "InBytes"),
                          (("egress", "REJECT"), "RejectedOut", "RejectedOutBytes"),
                          (("ingress", "REJECT"), "RejectedIn", "RejectedInBytes")]:
            if e[p] or e[b]:
                out[(eni, *key)] = (e[p], e[b])
    return out


def by_duckdb(con, relation, eni, direction, status):
    rows = con.sql(
        f"select {eni}, {direction}, action, sum(cast(packets as bigint)), sum(cast(bytes as bigint)) "
        f"from {relation} where {status} = 'OK' group by all"
    ).fetchall()
    return {(e, d, a): (p, b) for e, d, a, p, b in rows}


def text_relation(root):
    glob = root / "counters" / "text" / "**" / "*.log.gz"
    return f"read_csv('{glob}', delim=' ', header=true, nullstr='-', all_varchar=true, hive_partitioning=false)"


def parquet_relation(root):
    glob = root / "counters" / "parquet" / "**" / "*.log.parquet"
    return f"read_parquet('{glob}', hive_partitioning=false)"


def test_the_capture_exercises_every_kind_of_decision(run):
    """The comparison below means something only if the mix has everything in it."""
    reasons = Counter((v["verdict"], v["reason"]) for v in run["verdicts"])
    for want in [("forward", None), ("reject", "sg-egress"), ("reject", "nacl-egress"), ("reject", "nacl-ingress"),
                 ("reject", "sg-ingress"), ("reply", None), ("drop", "no-route"), ("drop", "src-dst-check"),
                 ("drop", "unknown-source"), ("drop", "malformed")]:
        assert reasons[want] > 0, (want, reasons)
    spec = by_spec(run)
    assert {d for (_, d, _) in spec} == {"egress", "ingress"}
    assert {a for (_, _, a) in spec} == {"ACCEPT", "REJECT"}
    assert len({e for (e, _, _) in spec}) == 4, "every ENI has traffic"
    con = duckdb.connect()
    rel = text_relation(run["root"])
    protos = {r[0] for r in con.sql(f"select distinct protocol from {rel} where \"log-status\" = 'OK'").fetchall()}
    assert protos == {"1", "6", "17"}
    paths = Counter(r[0] for r in con.sql(f"select \"traffic-path\" from {rel} where \"flow-direction\" = 'egress'").fetchall())
    assert paths["1"] > 0 and paths["2"] > 0, "egress inside the VPC and to the internet"
    windows = con.execute(f"select count(distinct cast(start as bigint) // 60) from {rel}").fetchone()[0]
    assert windows >= 3, "several aggregation windows"


def test_counters_follow_the_spec(run):
    assert by_counters(run["stats"]) == by_spec(run)


def test_duckdb_over_gzip_text_equals_the_counters(run):
    con = duckdb.connect()
    got = by_duckdb(con, text_relation(run["root"]), '"interface-id"', '"flow-direction"', '"log-status"')
    assert got == by_counters(run["stats"])


def test_duckdb_over_parquet_equals_the_counters(run):
    con = duckdb.connect()
    got = by_duckdb(con, parquet_relation(run["root"]), "interface_id", "flow_direction", "log_status")
    assert got == by_counters(run["stats"])


def test_nothing_skipped_and_every_record_accounted(run):
    con = duckdb.connect()
    for rel, status in [(text_relation(run["root"]), '"log-status"'), (parquet_relation(run["root"]), "log_status")]:
        statuses = dict(con.sql(f"select {status}, count(*) from {rel} group by all").fetchall())
        assert "SKIPDATA" not in statuses, statuses
        assert statuses["OK"] > 0
    logs = {f["FlowLogId"]: f for f in run["stats"]["FlowLogs"]}
    assert len(logs) == 4
    for f in logs.values():
        assert f["RecordsSkipped"] == 0 and f["Errors"] == 0 and f["LastError"] is None, f
    text_rows = con.execute(f"select count(*) from {text_relation(run['root'])}").fetchone()[0]
    parquet_rows = con.execute(f"select count(*) from {parquet_relation(run['root'])}").fetchone()[0]
    assert logs["fl-0c0ffee0000000001"]["RecordsWritten"] == text_rows
    assert sum(f["RecordsWritten"] for k, f in logs.items() if k != "fl-0c0ffee0000000001") == parquet_rows
    # One gzip header line per text file, nothing else beside the records.
    for p in (run["root"] / "counters" / "text").rglob("*.log.gz"):
        with gzip.open(p, "rt") as f:
            assert f.readline().split() == [x[2:-1] for x in FIELDS.split()]
