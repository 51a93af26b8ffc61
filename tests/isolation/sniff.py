"""What reaches the router from the guests, for tests/it/isolation.rs.

Run inside the router namespace (the one holding the guests' bridges). Every
IPv4 frame that arrives on a bridge device (the router's side of a guest
network, i.e. after the bridge's own filtering of guest ports) and is aimed
at a port in [PORT_LOW, PORT_HIGH] (UDP or TCP), or is an ICMP echo, or is
a DHCP server's reply (UDP from port 67: no guest may send one), is
written to OUT as one JSON line: the bridge, the Ethernet source, the IPv4
source and destination, the protocol, the destination port and the payload.

    python3 sniff.py OUT PORT_LOW PORT_HIGH
"""

import json
import os
import socket
import struct
import sys

ETH_P_ALL = 0x0003


BRIDGES = {}


def is_bridge(name):
    if name not in BRIDGES:
        BRIDGES[name] = os.path.isdir(f"/sys/class/net/{name}/bridge")
    return BRIDGES[name]


def mac(raw):
    return ":".join(f"{b:02x}" for b in raw)


def main():
    out, low, high = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    with open(out, "a", buffering=1) as log:
        log.write(json.dumps({"ready": True}) + "\n")
        while True:
            frame, (ifname, _proto, pkttype, _hatype, _addr) = sock.recvfrom(65535)
            # Frames this host sends itself are not what a guest sent.
            if pkttype == socket.PACKET_OUTGOING or not is_bridge(ifname) or len(frame) < 34:
                continue
            if struct.unpack("!H", frame[12:14])[0] != 0x0800:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            proto = ip[9]
            src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            body = ip[ihl:]
            record = {"bridge": ifname, "mac": mac(frame[6:12]), "src": src, "dst": dst}
            if proto in (6, 17) and len(body) >= 4:
                sport, dport = struct.unpack("!HH", body[0:4])
                dhcp_reply = proto == 17 and sport == 67
                if not (low <= dport <= high or dhcp_reply):
                    continue
                if proto == 17:
                    payload = body[8:]
                else:
                    payload = body[(body[12] >> 4) * 4:] if len(body) >= 13 else b""
                record.update(proto="dhcp-reply" if dhcp_reply else "udp" if proto == 17 else "tcp",
                              dport=dport, payload=payload.decode("latin-1"))
            elif proto == 1 and body[:1] == b"\x08":
                record.update(proto="icmp", dport=0, payload=body[8:40].decode("latin-1"))
            else:
                continue
            log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
