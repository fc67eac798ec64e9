#!/usr/bin/env python3
"""Probes from inside a namespace, with real sockets; prints one JSON line.

  probe.py tcp DST PORT [--src ADDR] [--timeout S]     connect, send a line, read the echo
  probe.py udp DST PORT [--src ADDR] [--timeout S]     send a datagram, wait for the echo
  probe.py hold DST PORT CONTROL_FIFO [--src ADDR]     a long-lived TCP connection: sends a
      line whenever a line arrives on CONTROL_FIFO and prints whether the echo came back
  probe.py bulk DST PORT BYTES                         sends BYTES of pseudo-random data to
      serve.py, which answers their SHA-256; prints whether it matches and the rate
"""
import hashlib
import json
import socket
import sys
import time


def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def tcp(dst, port, src, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    t0 = time.time()
    try:
        s.connect((dst, port))
        s.sendall(b"hello\n")
        data = s.recv(4096)
        return {"ok": bool(data), "answer": data.decode(errors="replace").strip(), "secs": round(time.time() - t0, 3)}
    except OSError as e:
        return {"ok": False, "error": str(e), "secs": round(time.time() - t0, 3)}
    finally:
        s.close()


def udp(dst, port, src, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.sendto(b"hello\n", (dst, port))
        data, _ = s.recvfrom(4096)
        return {"ok": True, "answer": data.decode(errors="replace").strip()}
    except OSError as e:
        return {"ok": False, "error": str(e)}
    finally:
        s.close()


def hold(dst, port, fifo, src, timeout):
    """Opens a connection and keeps it; each line on the fifo makes it try one round
    trip and report it (stdout, one JSON line each)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.connect((dst, port))
        print(json.dumps({"event": "open", "ok": True}), flush=True)
    except OSError as e:
        print(json.dumps({"event": "open", "ok": False, "error": str(e)}), flush=True)
        return
    with open(fifo) as control:
        for n, line in enumerate(control):
            if line.strip() == "quit":
                break
            try:
                s.sendall(f"round {n}\n".encode())
                data = s.recv(4096)
                print(json.dumps({"event": line.strip(), "ok": bool(data)}), flush=True)
            except OSError as e:
                print(json.dumps({"event": line.strip(), "ok": False, "error": str(e)}), flush=True)
    s.close()


def bulk(dst, port, total, timeout):
    """Deterministic pseudo-random data (a SHA-256 chain, so nothing repeats at a
    period a bug could hide in), hashed on both ends."""
    s = socket.create_connection((dst, port), timeout=timeout)
    s.settimeout(max(timeout, 60))
    s.sendall(f"BULK {total}\n".encode())
    mine, block, sent = hashlib.sha256(), hashlib.sha256(b"vpcgate").digest() * 2048, 0
    t0 = time.time()
    while sent < total:
        chunk = block[: min(len(block), total - sent)]
        s.sendall(chunk)
        mine.update(chunk)
        sent += len(chunk)
        block = hashlib.sha256(block[:64]).digest() * 2048
    answer = s.makefile("rb").readline().decode().strip()
    secs = time.time() - t0
    s.close()
    return {"ok": answer == mine.hexdigest(), "bytes": sent, "secs": round(secs, 2),
            "gbit_per_s": round(sent * 8 / secs / 1e9, 2), "sha256": mine.hexdigest(), "answer": answer}


def main():
    kind, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    src = opt("--src", None)
    timeout = float(opt("--timeout", "2"))
    if kind == "tcp":
        print(json.dumps(tcp(dst, port, src, timeout)))
    elif kind == "udp":
        print(json.dumps(udp(dst, port, src, timeout)))
    elif kind == "hold":
        hold(dst, port, sys.argv[4], src, timeout)
    elif kind == "bulk":
        print(json.dumps(bulk(dst, port, int(sys.argv[4]), timeout)))
    else:
        sys.exit(f"unknown probe {kind}")


if __name__ == "__main__":
    main()
