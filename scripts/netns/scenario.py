#!/usr/bin/env python3
"""The three-tier scenario, live: real Linux hosts in network namespaces talk through
vpcgated (AF_XDP) and every attempt of shared/spec/three-tier.md is made with real
sockets (TCP connect + echo, ping). Rows 14-16 change the policy through the
`vpcgate` CLI while a connection is open. Prints a table of expected vs observed with
the decision that settled it (from `vpcgate trace` against the running daemon), then
the flow-log records the run produced. Cleans everything up, also on failure or
Ctrl-C.

usage: scenario.py [--bin-dir DIR] [--json] [--queues N] [--keep]
"""
import argparse
import fcntl
import gzip
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import sys
import tempfile
import time

import stream  # frame builders, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOPO = os.path.join(HERE, "three-tier.sh")
PROBE = os.path.join(HERE, "probe.py")
INJECT = os.path.join(HERE, "inject.py")
STREAM = os.path.join(HERE, "stream.py")

WEB_SG = "sg-0f00d00000000e001"
PUBLIC_NACL = "acl-0f00d00000000c001"
WEB_ENI = "eni-0f00d00000000b001"
IP = {"web": "198.18.1.10", "bastion": "198.18.1.20", "app": "198.18.2.10", "db": "198.18.3.10",
      "client": "198.19.0.10", "admin": "203.0.113.10", "attacker": "198.19.66.6"}
ENI = {"web": "eni-0f00d00000000b001", "bastion": "eni-0f00d00000000b002",
       "app": "eni-0f00d00000000b003", "db": "eni-0f00d00000000b004"}
OUTSIDE = {"client", "admin", "attacker"}


def sh(*cmd, check=True, capture=True, timeout=60):
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Scenario:
    def __init__(self, bin_dir, queues, workdir):
        self.vpcgated = os.path.join(bin_dir, "vpcgated")
        self.vpcgate = os.path.join(bin_dir, "vpcgate")
        self.queues = queues
        self.dir = workdir
        self.sock = os.path.join(workdir, "api.sock")
        self.daemon = None
        self.holds = []

    # --- setup and teardown -------------------------------------------------------
    def up(self, services=True):
        sh(TOPO, "up", "--queues", str(self.queues))
        if services:
            sh(TOPO, "services")
        cfg = json.load(open(os.path.join(ROOT, "examples/three-tier/config.json")))
        cfg["Appliance"]["FlowLogRoot"] = os.path.join(self.dir, "flowlogs")
        cfg["Appliance"]["Api"] = {"Socket": self.sock}
        if self.queues > 1:
            cfg["Appliance"]["Workers"] = {"Count": self.queues}
        # Short windows so the records appear within the demo (AWS allows 60 or 600).
        for f in cfg["FlowLogs"]:
            f["MaxAggregationInterval"] = 5
        self.config = os.path.join(self.dir, "config.json")
        json.dump(cfg, open(self.config, "w"), indent=2)
        log = open(os.path.join(self.dir, "vpcgated.log"), "w")
        self.daemon = subprocess.Popen(
            ["ip", "netns", "exec", "vgt-sw", self.vpcgated, "--config", self.config, "--state-dir",
             os.path.join(self.dir, "state"), "--reset"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(150):
            if os.path.exists(self.sock) and self.cli("describe-vpcs", check=False).returncode == 0:
                return
            if self.daemon.poll() is not None:
                raise RuntimeError("vpcgated exited:\n" + open(os.path.join(self.dir, "vpcgated.log")).read())
            time.sleep(0.2)
        raise RuntimeError("vpcgated did not become ready")

    def stop_daemon(self):
        """SIGTERM: the daemon detaches its XDP programs and publishes the flow-log
        files it still holds open (S3 files stay open for their 5-minute window)."""
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()

    def down(self):
        for h in self.holds:
            try:
                h.kill()
            except OSError:
                pass
        self.stop_daemon()
        sh(TOPO, "down", check=False)

    # --- tools --------------------------------------------------------------------
    def cli(self, *args, check=True):
        return sh(self.vpcgate, "--socket", self.sock, *args, check=check)

    def probe(self, host, kind, dst, port, timeout=1.5):
        r = sh(TOPO, "exec", host, "python3", PROBE, kind, dst, str(port), "--timeout", str(timeout), check=False)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"ok": False, "error": r.stderr.strip()}

    def ping(self, host, dst):
        r = sh(TOPO, "exec", host, "ping", "-c", "2", "-W", "1", "-i", "0.3", dst, check=False)
        return {"ok": r.returncode == 0}

    def trace(self, src, dst, proto, dport):
        """The live daemon's verdict for the attempt's first packet, and the line of
        its explanation that settled it."""
        where = ["--port", "internet", "--src", IP[src]] if src in OUTSIDE else ["--eni", ENI[src]]
        args = ["trace", *where, "--dst", IP[dst], "--protocol", proto]
        if dport:
            args += ["--dport", str(dport)]
        r = self.cli(*args, "--output", "json", check=False)
        try:
            leg = json.loads(r.stdout)["Legs"][0]
        except (json.JSONDecodeError, KeyError, IndexError):
            return None, r.stderr.strip()
        texts = [s["Text"] for s in leg["steps"]]
        decisive = [t for t in texts if t.startswith(("sg-", "nacl-"))]
        return leg.get("reason"), (decisive[-1] if decisive else texts[-1])

    def hold(self, src, dst, port):
        """A long-lived connection; `.round()` makes one round trip through it."""
        fifo = os.path.join(self.dir, f"hold-{len(self.holds)}")
        os.mkfifo(fifo)
        p = subprocess.Popen([TOPO, "exec", src, "python3", PROBE, "hold", IP[dst], str(port), fifo, "--timeout", "1.5"],
                             stdout=subprocess.PIPE, text=True)
        self.holds.append(p)
        ctl = open(fifo, "w")
        opened = json.loads(p.stdout.readline())

        class Hold:
            def round(self, name):
                ctl.write(name + "\n")
                ctl.flush()
                return json.loads(p.stdout.readline())["ok"]

            def close(self):
                ctl.write("quit\n")
                ctl.close()

        return opened["ok"], Hold()

    # --- the table ----------------------------------------------------------------
    def simple_rows(self):
        rows = [
            ("1", "client -> web tcp/80", "client", "web", "tcp", 80, None),
            ("2", "client -> web tcp/443", "client", "web", "tcp", 443, None),
            ("3", "admin -> web tcp/22", "admin", "web", "tcp", 22, "sg-ingress"),
            ("4", "admin -> bastion tcp/22", "admin", "bastion", "tcp", 22, None),
            ("5", "bastion -> db tcp/22", "bastion", "db", "tcp", 22, None),
            ("6", "client -> db tcp/3306", "client", "db", "tcp", 3306, "sg-ingress"),
            ("7", "web -> app tcp/8080", "web", "app", "tcp", 8080, None),
            ("8a", "web -> app tcp/22", "web", "app", "tcp", 22, "sg-ingress"),
            ("8b", "web -> db tcp/3306", "web", "db", "tcp", 3306, "sg-egress"),
            ("9", "app -> db tcp/3306", "app", "db", "tcp", 3306, None),
            ("10", "db -> client tcp/443", "db", "client", "tcp", 443, "sg-egress"),
            ("11", "app -> client tcp/443", "app", "client", "tcp", 443, None),
            ("12", "attacker -> web tcp/80", "attacker", "web", "tcp", 80, "nacl-ingress"),
            ("13", "client -> web ICMP echo", "client", "web", "icmp", None, "nacl-ingress"),
            ("13b", "client -> web tcp/8080", "client", "web", "tcp", 8080, "sg-ingress"),
        ]
        out = []
        for row, what, src, dst, proto, port, refused_by in rows:
            reason, why = self.trace(src, dst, proto, port)
            r = self.ping(src, IP[dst]) if proto == "icmp" else self.probe(src, "tcp", IP[dst], port)
            expected = f"refused ({refused_by})" if refused_by else ("connects" if proto == "tcp" else "replies")
            if r["ok"]:
                observed = "connects" if proto == "tcp" else "replies"
            else:
                observed = f"refused ({reason})" if reason else "refused"
            out.append({"row": row, "what": what, "expected": expected, "observed": observed,
                        "ok": expected == observed, "why": why})
        return out

    def change_rows(self):
        out = []

        def row(n, what, expected, observed, why):
            out.append({"row": n, "what": what, "expected": expected, "observed": observed,
                        "ok": expected == observed, "why": why})

        # 14: revoke web-sg tcp/80 while #1's connection is open.
        ok, conn = self.hold("client", "web", 80)
        before = ok and conn.round("before")
        self.cli("revoke-security-group-ingress", "--group-id", WEB_SG, "--protocol", "tcp", "--port", "80",
                 "--cidr", "0.0.0.0/0")
        after = conn.round("after")
        fresh = self.probe("client", "tcp", IP["web"], 80)["ok"]
        conn.close()
        self.cli("authorize-security-group-ingress", "--group-id", WEB_SG, "--protocol", "tcp", "--port", "80",
                 "--cidr", "0.0.0.0/0")
        row("14", "revoke web-sg tcp/80, #1 open", "open keeps working, new refused",
            f"open {'works' if before and after else 'broke'}, new {'refused' if not fresh else 'connects'}"
            if before else "connection did not open",
            "tracked flow survives its rule; a new flow meets sg-ingress")
        out[-1]["ok"] = before and after and not fresh

        # 15: an open SG on web (tcp 80 from anywhere, all out): untracked; revoke.
        created = json.loads(self.cli("create-security-group", "--group-name", "open-sg", "--description",
                                      "open web", "--vpc-id", "vpc-0f00d000000000001").stdout)
        open_sg = created["GroupId"]
        self.cli("authorize-security-group-ingress", "--group-id", open_sg, "--protocol", "tcp", "--port", "80",
                 "--cidr", "0.0.0.0/0")
        self.cli("modify-network-interface-attribute", "--network-interface-id", WEB_ENI, "--groups", open_sg)
        ok, conn = self.hold("client", "web", 80)
        before = ok and conn.round("before")
        self.cli("revoke-security-group-ingress", "--group-id", open_sg, "--protocol", "tcp", "--port", "80",
                 "--cidr", "0.0.0.0/0")
        after = conn.round("after")
        conn.close()
        self.cli("modify-network-interface-attribute", "--network-interface-id", WEB_ENI, "--groups", WEB_SG)
        self.cli("delete-security-group", "--group-id", open_sg)
        row("15", "open SG on web, revoke inbound", "open connection stops",
            ("open connection stops" if before and not after else f"before={before} after={after}"),
            "untracked flow re-evaluated at once")

        # 16: add a NACL deny for the client while #2's connection is open.
        ok, conn = self.hold("client", "web", 443)
        before = ok and conn.round("before")
        self.cli("create-network-acl-entry", "--network-acl-id", PUBLIC_NACL, "--rule-number", "40", "--protocol",
                 "-1", "--cidr-block", "198.19.0.10/32", "--rule-action", "deny", "--ingress")
        after = conn.round("after")
        conn.close()
        self.cli("delete-network-acl-entry", "--network-acl-id", PUBLIC_NACL, "--rule-number", "40", "--ingress")
        row("16", "NACL deny for client, #2 open", "open connection stops",
            ("open connection stops" if before and not after else f"before={before} after={after}"),
            "NACLs apply to existing flows")
        return out

    def flow_records(self):
        """Every record of every published flow-log file."""
        recs = []
        for dirpath, _, files in os.walk(os.path.join(self.dir, "flowlogs")):
            for f in files:
                if f.endswith(".log.gz") and not f.startswith("."):
                    with gzip.open(os.path.join(dirpath, f), "rt") as fh:
                        lines = fh.read().splitlines()
                    recs.extend(l.split(" ") for l in lines[1:])
        return recs

    def stats(self):
        return json.loads(self.cli("stats").stdout)

    def daemon_pid(self):
        for p in sh("ip", "netns", "pids", "vgt-sw").stdout.split():
            try:
                if "vpcgated" in open(f"/proc/{p}/comm").read():
                    return p
            except OSError:
                continue
        return None

    def daemon_rss_kib(self):
        pid = self.daemon_pid()
        if pid is None:
            return None
        status = open(f"/proc/{pid}/status").read()
        return int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1])

    def idle_cpu(self, secs=3.0):
        """The daemon's CPU use (all threads, 1.0 = one core) over `secs` without
        traffic: adaptive workers must sleep when idle."""
        pid = self.daemon_pid()
        if pid is None:
            return None

        def cpu_secs():
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        time.sleep(0.5)  # the last attempt's spin after its final frame
        c0, t0 = cpu_secs(), time.monotonic()
        time.sleep(secs)
        return (cpu_secs() - c0) / (time.monotonic() - t0)

    def bulk(self, total):
        """A verified transfer web -> app tcp/8080 (allowed: app-sg 8080 from web-sg),
        then iperf3 for the rate; with the daemon's memory before and after."""
        warm = self.probe("web", "tcp", IP["app"], 8080)
        rss0 = self.daemon_rss_kib()
        r = sh(TOPO, "exec", "web", "python3", PROBE, "bulk", IP["app"], "8080", str(total), "--timeout", "10",
               check=False, timeout=600)
        res = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {"ok": False, "error": r.stderr}
        rss1 = self.daemon_rss_kib()
        iperf = None
        if shutil.which("iperf3"):
            server = subprocess.Popen([TOPO, "exec", "app", "iperf3", "-s", "-1", "-p", "8081"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            # app-sg allows 8080 only: open 8081 for the measurement, then close it again.
            self.cli("authorize-security-group-ingress", "--group-id", "sg-0f00d00000000e002", "--protocol", "tcp",
                     "--port", "8081", "--source-group", "sg-0f00d00000000e001")
            out = sh(TOPO, "exec", "web", "iperf3", "-c", IP["app"], "-p", "8081", "-n", str(total), "-J",
                     check=False, timeout=600)
            self.cli("revoke-security-group-ingress", "--group-id", "sg-0f00d00000000e002", "--protocol", "tcp",
                     "--port", "8081", "--source-group", "sg-0f00d00000000e001")
            server.wait(timeout=10)
            try:
                end = json.loads(out.stdout)["end"]
                iperf = {"bytes": end["sum_received"]["bytes"], "bytes_sent": end["sum_sent"]["bytes"], "gbit_per_s": round(end["sum_received"]["bits_per_second"] / 1e9, 2),
                         "retransmits": end["sum_sent"].get("retransmits")}
            except (json.JSONDecodeError, KeyError):
                iperf = {"error": out.stderr.strip() or out.stdout[-300:]}
        return {"warm": warm, "transfer": res, "rss_kib_before": rss0, "rss_kib_after": rss1, "iperf3": iperf}

    def mute_hosts(self):
        """The VPC hosts' kernels drop every IP packet that arrives, so crafted frames
        get no answers and only the test's frames cross the switch."""
        for h in ("web", "bastion", "app", "db"):
            sh(TOPO, "exec", h, "nft", "add table ip mute; add chain ip mute in { type filter hook prerouting priority -400; "
               "policy drop; }")

    def exact_stats(self):
        """Frames of every kind, crafted and sent with packet sockets from the hosts'
        side of the veths, a distinct number of each; DescribeStats before and after
        must differ by exactly what was sent: verdicts by reason, per-ENI counters, per
        queue rx/tx. The hosts' kernels drop every IP packet that arrives (nftables), so no host
        answers and nothing but the test's frames crosses the switch."""
        self.mute_hosts()
        # app's subnet NACL refuses app -> internet https on the way out (rule 90).
        self.cli("create-network-acl-entry", "--network-acl-id", "acl-0f00d00000000c000", "--rule-number", "90",
                 "--protocol", "tcp", "--port-range", "From=443,To=443", "--cidr-block", "198.19.0.0/16",
                 "--rule-action", "deny", "--egress")
        router, gw = "02:76:70:63:67:01", "02:00:00:00:ff:01"
        mac = {"web": "02:00:00:00:01:0a", "app": "02:00:00:00:02:0a"}

        eth = stream.ether

        def syn(src, dst, sport, dport, ihl=5):
            return stream.syn_packet(src, dst, sport, dport, 1, ihl)

        def arp_request(src_mac, src_ip, target):
            return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes.fromhex(src_mac.replace(":", "")),
                               socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(target))

        web, app = IP["web"], IP["app"]
        # (what, sending host's namespace + interface, frame, count, expected verdict key)
        kinds = [
            ("forward", "web", eth(mac["web"], router, syn(web, app, 50001, 8080)), 7, ("Forwarded",)),
            ("sg-egress", "web", eth(mac["web"], router, syn(web, IP["db"], 50002, 3306)), 5, ("Rejected", "sg-egress")),
            ("sg-ingress", "web", eth(mac["web"], router, syn(web, app, 50003, 22)), 4, ("Rejected", "sg-ingress")),
            ("nacl-ingress", "inet", eth(gw, router, syn(IP["attacker"], web, 50004, 80)), 3,
             ("Rejected", "nacl-ingress")),
            ("nacl-egress", "app", eth(mac["app"], router, syn(app, IP["client"], 50005, 443)), 6,
             ("Rejected", "nacl-egress")),
            ("no-route", "web", eth(mac["web"], router, syn(web, "198.18.1.99", 50006, 80)), 11, ("Dropped", "no-route")),
            ("src-dst-check", "web", eth(mac["web"], router, syn("198.18.1.77", app, 50007, 8080)), 2,
             ("Dropped", "src-dst-check")),
            ("unknown-source", "web", eth("02:00:00:00:01:99", router, syn(web, app, 50008, 8080)), 8,
             ("Dropped", "unknown-source")),
            ("malformed", "web", eth(mac["web"], router, syn(web, app, 50009, 8080, ihl=4)), 9, ("Dropped", "malformed")),
            ("arp", "web", eth(mac["web"], "ff:ff:ff:ff:ff:ff", arp_request(mac["web"], web, "198.18.1.1"), 0x0806), 3,
             ("Replied",)),
        ]
        time.sleep(1.0)  # the workers publish their counters every 250 ms
        before = self.stats()
        by_ns = {}
        for what, host, frame, count, _ in kinds:
            by_ns.setdefault(host, []).append(f"{frame.hex()}:{count}")
        for host, specs in by_ns.items():
            if host == "inet":
                sh("ip", "netns", "exec", "vgt-inet", "python3", INJECT, "up0", *specs)
            else:
                sh(TOPO, "exec", host, "python3", INJECT, "eth0", *specs)
        time.sleep(1.5)
        after = self.stats()

        def delta(path):
            a, b = after, before
            for k in path:
                a, b = a[k], b[k]
            return a - b

        mismatches = []

        def expect(what, got, want):
            if got != want:
                mismatches.append(f"{what}: counted {got}, sent {want}")

        frames = sum(k[3] for k in kinds)
        expect("Totals.Frames", delta(("Totals", "Frames")), frames)
        expect("Totals.Bytes", delta(("Totals", "Bytes")), sum(len(k[2]) * k[3] for k in kinds))
        for what, _, _, count, key in kinds:
            expect(f"Totals.{'.'.join(key)} ({what})", delta(("Totals", *key)), count)
        expect("Totals.Malformed.bad-ipv4-ihl", delta(("Totals", "Malformed", "bad-ipv4-ihl")), 9)
        n = {k[0]: k[3] for k in kinds}

        def queues(doc):
            out = {}
            for w in doc["Workers"]:
                for q in w["Queues"]:
                    for f in ("RxPackets", "RxBytes", "TxPackets", "TxBytes"):
                        out[(q["Port"], f)] = out.get((q["Port"], f), 0) + q[f]
            return out

        qa, qb = queues(after), queues(before)
        sent_on = {}
        for _, host, frame, count, _ in kinds:
            port = "internet" if host == "inet" else host
            p, b = sent_on.get(port, (0, 0))
            sent_on[port] = (p + count, b + len(frame) * count)
        for port in ("web", "bastion", "app", "db", "internet"):
            p, b = sent_on.get(port, (0, 0))
            expect(f"{port} RxPackets", qa[(port, "RxPackets")] - qb[(port, "RxPackets")], p)
            expect(f"{port} RxBytes", qa[(port, "RxBytes")] - qb[(port, "RxBytes")], b)
        # Forwarded SYNs leave on app's port (Ethernet + 40 IP bytes, padding gone); the
        # ARP answers on web's.
        tx = {"app": (n["forward"], n["forward"] * 54), "web": (n["arp"], None)}
        for port in ("web", "bastion", "app", "db", "internet"):
            p, b = tx.get(port, (0, 0))
            expect(f"{port} TxPackets", qa[(port, "TxPackets")] - qb[(port, "TxPackets")], p)
            if b is not None:
                expect(f"{port} TxBytes", qa[(port, "TxBytes")] - qb[(port, "TxBytes")], b)
        enis = {e["NetworkInterfaceId"]: e for e in after["NetworkInterfaces"]}
        enis0 = {e["NetworkInterfaceId"]: e for e in before["NetworkInterfaces"]}
        ip_bytes = 40
        want = {
            ENI["web"]: {"OutPackets": n["forward"] + n["sg-ingress"], "OutBytes": (n["forward"] + n["sg-ingress"]) * ip_bytes,
                         "RejectedOut": n["sg-egress"], "RejectedOutBytes": n["sg-egress"] * ip_bytes,
                         "RejectedIn": n["nacl-ingress"], "RejectedInBytes": n["nacl-ingress"] * ip_bytes,
                         "srcdst_check_dropped": n["src-dst-check"], "InPackets": 0},
            ENI["app"]: {"InPackets": n["forward"], "InBytes": n["forward"] * ip_bytes, "RejectedIn": n["sg-ingress"],
                         "RejectedOut": n["nacl-egress"], "OutPackets": 0},
            ENI["db"]: {"InPackets": 0, "RejectedIn": 0, "OutPackets": 0},
            ENI["bastion"]: {"InPackets": 0, "OutPackets": 0},
        }
        for eni, fields in want.items():
            for f, v in fields.items():
                expect(f"{eni} {f}", enis[eni][f] - enis0[eni][f], v)
        # Every forwarded SYN opened an entry at web's egress and one at app's ingress.
        expect(f"{ENI['web']} ConntrackEntries", enis[ENI["web"]]["ConntrackEntries"] - enis0[ENI["web"]]["ConntrackEntries"], 1)
        expect(f"{ENI['app']} ConntrackEntries", enis[ENI["app"]]["ConntrackEntries"] - enis0[ENI["app"]]["ConntrackEntries"], 1)
        return {"sent": {k[0]: k[3] for k in kinds}, "frames": frames, "mismatches": mismatches,
                "before": before, "after": after}

    def live_updates(self, secs=30, clients=32, margin=0.1):
        """Rule changes through the API at full speed while traffic runs.

        Traffic (crafted TCP SYNs, web -> app, sent and received with packet sockets;
        the hosts' kernels drop what arrives): `est`, 1000/s over 500 source ports,
        i.e. connections the security groups allow, tracked from their first packet;
        `probe`, 200/s to tcp/8081, a new connection each, which app-sg allows only
        while a toggled rule is present. Changes: `clients` API connections authorize
        and revoke rules and create and delete NACL entries that leave both streams'
        verdicts alone, as fast as the daemon answers; one more connection toggles
        app-sg's tcp/8081 rule every 0.5 s. Expected: every `est` frame arrives (none
        lost, none misjudged during a swap); a `probe` frame sent while the rule was
        acknowledged present (absent) arrives (does not), except within `margin`
        seconds after an acknowledgement (publication) or while a toggle is in flight."""
        self.mute_hosts()
        router = "02:76:70:63:67:01"
        app_sg, web_sg, db_sg, nacl = "sg-0f00d00000000e002", WEB_SG, "sg-0f00d00000000e003", "acl-0f00d00000000c000"
        stop = threading.Event()
        done = [0] * (clients + 1)
        errors = []
        toggles = []  # (request time, acknowledgement time, rule present afterwards)

        def call(conn, buf, req):
            conn.sendall((json.dumps(req) + "\n").encode())
            while b"\n" not in buf[0]:
                chunk = conn.recv(65536)
                if not chunk:
                    raise RuntimeError("API closed the connection")
                buf[0] += chunk
            line, buf[0] = buf[0].split(b"\n", 1)
            return json.loads(line)

        def churn(k):
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(self.sock)
            buf = [b""]
            perm = [{"IpProtocol": "tcp", "FromPort": 5000 + k, "ToPort": 5000 + k,
                     "IpRanges": [{"CidrIp": f"10.{k}.0.0/16"}]}]
            entry = {"NetworkAclId": nacl, "RuleNumber": 200 + k, "Egress": False}
            nacl_client = k < 8  # the ACL has room for 16 more entries
            while not stop.is_set():
                if nacl_client:
                    reqs = [dict(entry, Action="CreateNetworkAclEntry", Protocol="6", RuleAction="deny",
                                 CidrBlock=f"10.99.{k}.0/24", PortRange={"From": 1, "To": 1024}),
                            dict(entry, Action="DeleteNetworkAclEntry")]
                else:
                    reqs = [{"Action": "AuthorizeSecurityGroupIngress", "GroupId": db_sg, "IpPermissions": perm},
                            {"Action": "RevokeSecurityGroupIngress", "GroupId": db_sg, "IpPermissions": perm}]
                for req in reqs:
                    r = call(conn, buf, req)
                    if "Error" in r:
                        errors.append(r["Error"])
                        stop.set()
                    done[k] += 1

        def toggle():
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(self.sock)
            buf = [b""]
            perm = [{"IpProtocol": "tcp", "FromPort": 8081, "ToPort": 8081, "UserIdGroupPairs": [{"GroupId": web_sg}]}]
            present = False
            while not stop.wait(0.5):
                action = "RevokeSecurityGroupIngress" if present else "AuthorizeSecurityGroupIngress"
                t = time.time()
                r = call(conn, buf, {"Action": action, "GroupId": app_sg, "IpPermissions": perm})
                if "Error" in r:
                    errors.append(r["Error"])
                    stop.set()
                present = not present
                toggles.append((t, time.time(), present))
                done[clients] += 1

        web_mac = "02:00:00:00:01:0a"
        # To files, not pipes: a full pipe would stop the receiver reading its socket.
        recv_path, send_path = os.path.join(self.dir, "received.jsonl"), os.path.join(self.dir, "sent.jsonl")
        recv = subprocess.Popen([TOPO, "exec", "app", "python3", STREAM, "recv", "eth0", str(secs + 4)],
                                stdout=open(recv_path, "w"))
        time.sleep(0.5)
        send = subprocess.Popen([TOPO, "exec", "web", "python3", STREAM, "send", "eth0", web_mac, router, str(secs),
                                 f"est,{IP['web']},{IP['app']},8080,1000,500",
                                 f"probe,{IP['web']},{IP['app']},8081,200,60000"], stdout=open(send_path, "w"))
        time.sleep(0.5)  # the first est packets open their connections before the churn starts
        threads = [threading.Thread(target=churn, args=(k,)) for k in range(clients)]
        threads.append(threading.Thread(target=toggle))
        t0 = time.time()
        for t in threads:
            t.start()
        time.sleep(max(0.0, secs - 1.0))
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        send.wait(timeout=60)
        recv.wait(timeout=60)
        sent = [json.loads(l) for l in open(send_path)]
        received = {(p, q) for _, p, q in (json.loads(l) for l in open(recv_path))}
        mismatches, uncertain = [], 0
        est_sent = [q for name, q, _, _ in sent if name == "est"]
        lost = [q for q in est_sent if (8080, q) not in received]
        if lost:
            mismatches.append(f"{len(lost)} of {len(est_sent)} est frames lost, first seqs {lost[:10]}")
        probes = [(q, t) for name, q, _, t in sent if name == "probe"]
        checked = absent = 0
        for q, t in probes:
            in_flight = any(req - 0.001 <= t <= ack + margin for req, ack, _ in toggles)
            if in_flight:
                uncertain += 1
                continue
            before = [present for req, _, present in toggles if req < t]
            want = before[-1] if before else False
            got = (8081, q) in received
            checked += 1
            absent += not want
            if got != want:
                mismatches.append(f"probe seq {q} at {t - t0:.3f}s: rule {'present' if want else 'absent'}, "
                                  f"frame {'arrived' if got else 'did not arrive'}")
        stats = self.stats()
        rx_dropped = sum(w["RxDropped"] for w in stats["Workers"])
        tx_full = sum(w["TxRingFull"] for w in stats["Workers"])
        if rx_dropped or tx_full:
            mismatches.append(f"rings dropped frames: RxDropped {rx_dropped}, TxRingFull {tx_full}")
        changes = sum(done)
        return {"changes": changes, "seconds": round(elapsed, 2), "changes_per_s": round(changes / elapsed, 1),
                "toggles": len(toggles), "est_sent": len(est_sent), "est_lost": len(lost), "probes": len(probes),
                "probes_checked": checked, "probes_checked_absent": absent, "probes_uncertain": uncertain, "api_errors": errors[:5],
                "mismatches": mismatches[:20], "publish": stats.get("Publish"), "totals": stats["Totals"]}


def print_table(rows):
    print(f"{'#':>4}  {'attempt':<30} {'expected':<26} {'observed':<30} {'':2}  decision")
    for r in rows:
        print(f"{r['row']:>4}  {r['what']:<30} {r['expected']:<26} {r['observed']:<30} "
              f"{'ok' if r['ok'] else 'XX'}  {r['why'][:90]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--json", action="store_true", help="print one JSON document (for tests)")
    ap.add_argument("--queues", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="leave the topology up (debugging)")
    ap.add_argument("--bulk", type=int, metavar="BYTES", help="only a verified transfer of BYTES web -> app, and iperf3")
    ap.add_argument("--live-updates", type=float, metavar="SECS",
                    help="only: API changes at full speed for SECS while traffic runs; every frame judged as acknowledged")
    ap.add_argument("--clients", type=int, default=32, help="API connections making changes (--live-updates)")
    ap.add_argument("--exact-stats", action="store_true",
                    help="only: send crafted frames of every kind, check DescribeStats counted exactly them")
    args = ap.parse_args()
    # One run at a time: the topology's names are fixed (tests may run in parallel).
    lock = open("/tmp/vpcgate-three-tier.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    workdir = tempfile.mkdtemp(prefix="vpcgate-scenario-")
    s = Scenario(args.bin_dir, args.queues, workdir)

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    result = {"rows": [], "flow_records": [], "stats": None}
    try:
        s.up(services=not (args.exact_stats or args.live_updates))
        if args.live_updates:
            result = s.live_updates(args.live_updates, args.clients)
            print(json.dumps(result))
            return
        if args.exact_stats:
            result = s.exact_stats()
            print(json.dumps(result))
            return
        if args.bulk:
            result = s.bulk(args.bulk)
            result["stats"] = s.stats()
            print(json.dumps(result))
            return
        if not args.json:
            print("vpcgated is up on the three-tier topology (AF_XDP); trying every attempt with real sockets...\n")
        result["rows"] = s.simple_rows() + s.change_rows()
        result["stats"] = s.stats()
        if args.json:  # for the live test; the demo need not wait for it
            result["idle_cpu"] = s.idle_cpu()
        s.stop_daemon()
        result["flow_records"] = s.flow_records()
    finally:
        if not args.keep:
            s.down()
            shutil.rmtree(workdir, ignore_errors=True)
    ok = all(r["ok"] for r in result["rows"])
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result["rows"])
        print("\n" + ("every row as AWS would decide it" if ok else "SOME ROWS DIFFER FROM THE SPEC"))
        recs = result["flow_records"]
        print(f"\nflow log fl-0f00d000000000f01 (S3 layout, default format, 5 s windows), published when vpcgated stopped: "
              f"{len(recs)} records; a sample:")
        print("  version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status")
        interesting = [r for r in recs if r[-1] == "OK"]
        for r in interesting[:6] + [r for r in interesting if r[12] == "REJECT"][:6]:
            print("  " + " ".join(r))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
