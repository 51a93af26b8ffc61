"""The tenants' side of tests/it/isolation.rs: a victim V in project A,
attackers X (project B) and Y (project A) trying to reach, impersonate or
deceive V on the wire, each attempt next to a control that must succeed:
V's closed port (over IPv4, at V's public address, then IPv6 link-local),
taking V's public address, IP and MAC spoofing, ARP poisoning of the router
and of V, V's metadata, and the cloud's addresses as sources with the
attacker's source/destination check off (source_dest.py), each from each
attacker; then V's groups changed while it runs (regroup.py: A's owner
moves V into a group opening 8080 to Y's group and back out, B's owner
tries V's groups, A's groups on X and its own open group on V); then a
rogue DHCP server on X while fresh guests of both projects boot.

Environment: STRATUS_ENDPOINT, A_KEY/A_SECRET, B_KEY/B_SECRET, IMAGE,
CLIENT_NETNS, CLIENT_ADDRESS, PUBLIC_GATEWAY, ROUTER_NETNS, SNIFF_LOG (what
the router's listener writes), VICTIM_SECRET, WORK. Prints one "REPORT [...]" line: every
attempt with its outcome (held, breached, control-failed) and evidence.
"""

import threading
import time
import traceback

import attacks
import regroup
import source_dest
from attacks import SECRET
from guests import Report, ec2, key_pair, launch, ready, ssh_group

VICTIM_DATA = f"""#!/bin/sh
# {SECRET}
mkdir -p /tmp/www && echo hi-from-victim > /tmp/www/index.html
httpd -p 8080 -h /tmp/www
echo victim serving 8080
"""


def attacker_data(name):
    return f"#!/bin/sh\necho user data of {name}\n"


def victim_health(victim):
    """V's SSH, its own metadata and its service all work (within a minute,
    for a network recovering from the attacks); what failed, or None."""
    md = "http://169.254.169.254/latest"
    try:
        out = victim.ssh_ok(f"timeout 5 wget -q -O - {md}/meta-data/instance-id; echo; "
                            f"timeout 5 wget -q -O - {md}/user-data; "
                            "timeout 5 wget -q -O - http://127.0.0.1:8080/", within=60)
    except AssertionError as e:
        return str(e)
    if victim.iid in out and SECRET in out and "hi-from-victim" in out:
        return None
    return f"the victim's own metadata or service is wrong: {out}"


def parallel(*calls):
    """Runs each call in a thread; their results, re-raising a failure."""
    results, errors = [None] * len(calls), []

    def one(i, call):
        try:
            results[i] = call()
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def main(report):
    a, b = ec2("A"), ec2("B")
    key_a, key_b = key_pair(a, "ka"), key_pair(b, "kb")
    sg_v, sg_y, sg_x = ssh_group(a, "victim"), ssh_group(a, "insider"), ssh_group(b, "outsider")
    victim = launch("V", a, "ka", key_a, sg_v, VICTIM_DATA)
    insider = launch("Y", a, "ka", key_a, sg_y, attacker_data("Y"))
    outsider = launch("X", b, "kb", key_b, sg_x, attacker_data("X"))
    started = time.time()
    parallel(*(lambda g=g: ready(g) for g in (victim, insider, outsider)))
    print(f"isolation: V {victim.address} X {outsider.address} Y {insider.address} "
          f"up in {time.time() - started:.0f}s", flush=True)
    broken = victim_health(victim)
    if broken:
        report.add("control-failed", "-", "the victim works before any attack", broken)
        return report
    public = victim.describe().get("PublicIpAddress")
    if not public:
        report.add("control-failed", "-", "the victim has a public address",
                   str(victim.describe()))
        return report

    for who, attacker, base in (("X (project B)", outsider, 40100),
                                ("Y (project A)", insider, 40200)):
        attacks.port_closed_to(report, who, attacker, victim, sg_v, "port")
        attacks.port_closed_to(report, who, attacker, victim, sg_v, "public address",
                               address=public)
        attacks.public_address_hijack(report, who, attacker, victim, public, base + 20)
        attacks.port_over_ipv6(report, who, attacker, victim)
        attacks.ip_spoofing(report, who, attacker, victim, base)
        source_dest.source_dest_check(report, who, attacker, victim, public, base + 60)
        attacks.mac_spoofing(report, who, attacker, victim, base + 10)
        attacks.arp_poisoning_gateway(report, who, attacker, victim)
        attacks.arp_poisoning_victim(report, who, attacker, victim)
        attacks.metadata(report, who, attacker, victim)
        broken = victim_health(victim)
        report.check(who, "the victim keeps working after the attacks", bool(broken), True,
                     broken or "ssh, own metadata and service fine")

    regroup.attempts(report, (a, b), (victim, insider, outsider), (sg_v, sg_y, sg_x),
                     victim_health)

    # A rogue DHCP server on X while fresh guests of both projects boot.
    started = attacks.rogue_dhcp_start(outsider)
    probe = "#!/bin/sh\necho route: $(ip route show default)\n"
    fresh = [launch("fresh-A", a, "ka", key_a, sg_y, probe),
             launch("fresh-B", b, "kb", key_b, sg_x, probe)]

    def booted(guest):
        guest.client.get_waiter("instance_running").wait(
            InstanceIds=[guest.iid], WaiterConfig={"Delay": 1, "MaxAttempts": 240})
        guest.address = guest.describe()["PrivateIpAddress"]
        guest.wait_console("STRATUS-BOOT ready")

    parallel(*(lambda g=g: booted(g) for g in fresh))
    attacks.rogue_dhcp_check(report, "X (project B)", outsider, fresh, started,
                             {"fresh-A": victim.gateway, "fresh-B": outsider.gateway})
    a.terminate_instances(InstanceIds=[fresh[0].iid])
    b.terminate_instances(InstanceIds=[fresh[1].iid])
    broken = victim_health(victim)
    report.check("-", "the victim works at the end", bool(broken), True,
                 broken or "ssh, own metadata and service fine")
    return report


if __name__ == "__main__":
    REPORT = Report()
    try:
        main(REPORT)
    except Exception:  # noqa: BLE001 - report any failure with its trace
        REPORT.add("control-failed", "-", "the harness ran to the end", traceback.format_exc())
    REPORT.dump()
