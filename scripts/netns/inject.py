#!/usr/bin/env python3
"""Sends crafted Ethernet frames on an interface with a packet socket, from inside a
namespace: the frames go out exactly as given (no kernel stack in between).

  inject.py IFACE HEX:COUNT [HEX:COUNT ...]
"""
import socket
import sys


def main():
    iface, specs = sys.argv[1], sys.argv[2:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    sent = 0
    for spec in specs:
        frame, count = spec.split(":")
        data = bytes.fromhex(frame)
        for _ in range(int(count)):
            s.send(data)
            sent += 1
    print(sent)


if __name__ == "__main__":
    main()
