"""The source/destination check turned off, as a NAT instance needs it
(tests/it/isolation.rs): the attacker's owner turns its check off, which
lets it send from addresses outside the cloud (the control: such a packet
reaches the router) but from none of the cloud's: not the victim's fixed or
public address, not a router's address, not an unallocated address of
either project's network, not the metadata address, not the public range's
gateway. With the check back on, the outside address is dropped again.
Another project cannot turn the victim's check off."""

import os

from botocore.exceptions import ClientError

from attacks import arrived, shown

# An address outside the cloud (TEST-NET-2), as a NAT instance forwards
# its clients' packets from.
FOREIGN = "198.51.100.7"
METADATA = "169.254.169.254"


def _unallocated(address):
    """An address of the same /24 network as `address` that no guest holds
    in this test (.250, or .249 for .250 itself)."""
    head, last = address.rsplit(".", 1)
    return f"{head}.{249 if last == '250' else 250}"


def _sends(gw, sources):
    """Shell: from each (source, port), a UDP datagram to gw:port and a TCP
    SYN to gw:port+1, the source held on eth0 only meanwhile (never answered
    for by ARP); then everything undone."""
    lines = ["sysctl -qw net.ipv4.conf.eth0.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=8"]
    for source, port in sources:
        lines += [f"ip addr add {source}/32 dev eth0",
                  f"ip route add {gw}/32 dev eth0 src {source}",
                  f"echo from {source}: $(ip route get {gw})",
                  f"timeout 1 tftp -g -l /dev/null -r from-{source} {gw} {port}",
                  f"timeout 2 nc -w 1 {gw} {port + 1} </dev/null",
                  f"ip route del {gw}/32 dev eth0 src {source}",
                  f"ip addr del {source}/32 dev eth0"]
    lines += ["sysctl -qw net.ipv4.conf.eth0.arp_announce=0 net.ipv4.conf.eth0.arp_ignore=0",
              "echo done"]
    return "\n".join(lines)


def _check(guest):
    """The guest's sourceDestCheck as its owner is shown it."""
    return guest.client.describe_instance_attribute(
        InstanceId=guest.iid, Attribute="sourceDestCheck")["SourceDestCheck"]["Value"]


def _set_check(guest, value):
    guest.client.modify_instance_attribute(InstanceId=guest.iid, SourceDestCheck={"Value": value})
    return _check(guest)


def _another_project(report, who, attacker, victim):
    """The attacker's credentials do not reach the victim's check."""
    try:
        attacker.client.modify_instance_attribute(InstanceId=victim.iid,
                                                  SourceDestCheck={"Value": False})
        answer = "accepted"
    except ClientError as e:
        answer = e.response["Error"]["Code"]
    after = _check(victim)
    report.check(who, "source/dest check: turning off the victim's from another project",
                 answer != "InvalidInstanceID.NotFound" or after is not True, True,
                 {"answer": answer, "the victim's check after": after})


def source_dest_check(report, who, attacker, victim, public, base):
    """8. With its check off, the attacker sends from an outside address
    (control: it arrives) and from the cloud's addresses (none arrives);
    with the check on again, the outside address does not arrive either,
    its own does (control)."""
    if attacker.client is not victim.client:
        _another_project(report, who, attacker, victim)
    gw = attacker.gateway
    cloud = [victim.address, public, _unallocated(victim.address), _unallocated(attacker.address),
             METADATA, os.environ["PUBLIC_GATEWAY"]]
    if victim.gateway != gw:
        cloud.append(victim.gateway)
    cloud = list(dict.fromkeys(cloud))
    spoofs = [(source, base + 2 + 2 * n) for n, source in enumerate(cloud)]
    spoof_ports = {p + d for _, p in spoofs for d in (0, 1)}
    off = _set_check(attacker, False)
    try:
        _, out = attacker.ssh(_sends(gw, [(FOREIGN, base)] + spoofs), timeout=90)
    finally:
        on = _set_check(attacker, True)
    foreign = arrived(lambda r: r["src"] == FOREIGN and r["dport"] in (base, base + 1))
    spoofed = arrived(lambda r: r["dport"] in spoof_ports, settle=0)
    report.check(who, f"source/dest check off: sending from the cloud's addresses {cloud}",
                 bool(spoofed), off is False and {"udp", "tcp"} <= {r["proto"] for r in foreign},
                 {"arrived from the cloud's addresses": shown(spoofed),
                  f"arrived from {FOREIGN}, check off (control)": shown(foreign),
                  "check shown after turning it off": off, "attacker": out})

    again, own = base + 20, base + 22
    script = _sends(gw, [(FOREIGN, again)]) + (
        f"\ntimeout 1 tftp -g -l /dev/null -r own {gw} {own}\n"
        f"timeout 2 nc -w 1 {gw} {own + 1} </dev/null\necho own sent")
    _, out = attacker.ssh(script, timeout=40)
    foreign = arrived(lambda r: r["dport"] in (again, again + 1))
    mine = arrived(lambda r: r["src"] == attacker.address and r["dport"] in (own, own + 1),
                   settle=0)
    report.check(who, f"source/dest check on again: sending from {FOREIGN}",
                 bool(foreign), on is True and {"udp", "tcp"} <= {r["proto"] for r in mine},
                 {f"arrived from {FOREIGN}, check on": shown(foreign),
                  "arrived from its own address (control)": shown(mine),
                  "check shown after turning it on": on, "attacker": out})
