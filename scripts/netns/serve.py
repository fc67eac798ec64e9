#!/usr/bin/env python3
"""A tiny multi-port TCP/UDP server for the scenario hosts: answers every line it
receives with "<host>:<port> <line>", so a client can tell a live connection from a
dead one. A TCP connection that starts with "BULK <n>" instead sends n bytes, which
are hashed: the answer is their SHA-256 (data verified end to end).
Usage: serve.py NAME PORT [PORT ...]   (TCP and UDP on each port)"""
import hashlib
import socket
import sys
import threading


def tcp(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_conn, args=(name, port, c), daemon=True).start()


def serve_conn(name, port, c):
    with c:
        f = c.makefile("rwb", buffering=0)
        while True:
            line = f.readline()
            if not line:
                return
            if line.startswith(b"BULK "):
                left, h = int(line.split()[1]), hashlib.sha256()
                while left > 0:
                    chunk = c.recv(min(left, 1 << 20))
                    if not chunk:
                        return
                    h.update(chunk)
                    left -= len(chunk)
                c.sendall(h.hexdigest().encode() + b"\n")
                continue
            c.sendall(f"{name}:{port} ".encode() + line)


def udp(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(f"{name}:{port} ".encode() + data, peer)


def main():
    name, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
    for p in ports:
        threading.Thread(target=tcp, args=(name, p), daemon=True).start()
        threading.Thread(target=udp, args=(name, p), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
