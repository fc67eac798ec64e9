#!/usr/bin/env python3
"""A tiny multi-port TCP/UDP server for the scenario hosts: answers every line it
receives with "<host>:<port> <line>", so a client can tell a live connection from a
dead one. Usage: serve.py NAME PORT [PORT ...]   (TCP and UDP on each port)"""
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
