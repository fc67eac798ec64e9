#!/usr/bin/env python3
"""Paced TCP SYN streams sent, or received, with packet sockets inside a namespace;
used by scenario.py --live-updates.

  stream.py send IFACE SRC_MAC DST_MAC SECS SPEC [SPEC ...]  > sent.jsonl
      SPEC = NAME,SRC_IP,DST_IP,DPORT,PPS,SPORTS   (sports cycle over SPORTS values)
      prints one JSON line per frame: [name, seq, sport, send time]
  stream.py recv IFACE SECS > received.jsonl
      prints [src ip, dst port, tcp seq] of every IPv4 TCP frame that arrives
"""
import json
import socket
import struct
import sys
import time


def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def ether(src_mac, dst_mac, payload, ethertype=0x0800):
    """An Ethernet frame, padded to the 60-byte minimum (padding is not IP bytes)."""
    f = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    f += struct.pack("!H", ethertype) + payload
    return f + b"\0" * max(0, 60 - len(f))


def syn_packet(src, dst, sport, dport, seq, ihl=5):
    """An IPv4 TCP SYN (40 bytes), `seq` as TCP sequence and IP id; an IHL below 5 makes
    it malformed."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 65535, 0, 0)
    seg = seg[:16] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, 6, len(seg)) + seg)) + seg[18:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(seg), seq & 0xFFFF, 0, 64, 6, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + seg


def syn(src_mac, dst_mac, src, dst, sport, dport, seq):
    return ether(src_mac, dst_mac, syn_packet(src, dst, sport, dport, seq))


def send(iface, src_mac, dst_mac, secs, specs):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    streams = []
    for spec in specs:
        name, src, dst, dport, pps, sports = spec.split(",")
        streams.append({"name": name, "src": src, "dst": dst, "dport": int(dport), "gap": 1 / float(pps),
                        "sports": int(sports), "seq": 0, "next": 0.0})
    out = sys.stdout
    t0 = time.time()
    for s in streams:
        s["next"] = t0
    while True:
        now = time.time()
        if now - t0 >= secs:
            break
        s = min(streams, key=lambda x: x["next"])
        if s["next"] > now:
            time.sleep(min(s["next"] - now, 0.002))
            continue
        sport = 10000 + s["seq"] % s["sports"]
        sock.send(syn(src_mac, dst_mac, s["src"], s["dst"], sport, s["dport"], s["seq"]))
        out.write(json.dumps([s["name"], s["seq"], sport, time.time()]) + "\n")
        s["seq"] += 1
        s["next"] += s["gap"]
    out.flush()


def recv(iface, secs):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    end = time.time() + secs
    out = sys.stdout
    while time.time() < end:
        try:
            f, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING or len(f) < 54 or f[23] != 6:
            continue
        ihl = (f[14] & 0xF) * 4
        dport, seq = struct.unpack("!HI", f[14 + ihl + 2:14 + ihl + 8])
        out.write(json.dumps([socket.inet_ntoa(f[26:30]), dport, seq]) + "\n")
    out.flush()


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6:])
    else:
        recv(sys.argv[2], float(sys.argv[3]))
