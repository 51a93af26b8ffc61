"""The attacks of the isolation test, each next to a control that must
succeed, so that a quiet network cannot pass for an isolated one. Every
attack runs in one SSH command into the attacker's guest (busybox tools),
which also undoes what it changed."""

import json
import os
import subprocess
import time

from guests import CLIENT, neighbour_mac, router, run

SNIFF_LOG = os.environ["SNIFF_LOG"]
SECRET = os.environ["VICTIM_SECRET"]


def arrived(predicate, settle=1.5):
    """What the router's listener saw that matches predicate (each distinct
    packet once)."""
    time.sleep(settle)
    rows = []
    with open(SNIFF_LOG) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "src" in row and predicate(row) and row not in rows:
                rows.append(row)
    return rows


def shown(rows):
    """Sniffed packets as evidence, one line each."""
    def text(payload):
        return "".join(c if c.isprintable() else "." for c in payload)[:40]
    return [f"{r['proto']} {r['src']} ({r['mac']}) -> {r['dst']}:{r['dport']} on {r['bridge']} "
            f"{text(r['payload'])!r}" for r in rows]


def port_closed_to(report, who, attacker, victim, sg, name, address=None):
    """6. A port the victim's groups do not open: closed to the attacker;
    open once a rule names the attacker's address; closed again when the
    rule goes. At `address` (the victim's public one) the same holds: the
    groups see the fixed addresses behind the translation."""
    target = address or victim.address
    fetch = f"timeout 4 wget -q -O - http://{target}:8080/ 2>&1; echo exit=$?"
    _, before = attacker.ssh(fetch, timeout=15)
    rule = [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "IpRanges": [{"CidrIp": f"{attacker.address}/32"}]}]
    victim.client.authorize_security_group_ingress(GroupId=sg, IpPermissions=rule)
    opened, deadline = "", time.time() + 40
    while "hi-from-victim" not in opened and time.time() < deadline:
        _, opened = attacker.ssh(fetch, timeout=15)
    victim.client.revoke_security_group_ingress(GroupId=sg, IpPermissions=rule)
    after, deadline = "hi-from-victim", time.time() + 40
    while "hi-from-victim" in after and time.time() < deadline:
        _, after = attacker.ssh(fetch, timeout=15)
    evidence = {"before the rule": before, "with the rule (control)": opened,
                "after revoking it": after}
    report.check(who, f"{name}: connect to the victim's closed port 8080",
                 "hi-from-victim" in before or "hi-from-victim" in after,
                 "hi-from-victim" in opened, evidence)


def port_over_ipv6(report, who, attacker, victim):
    """6b. The same port over IPv6 link-local, which no security group
    rule speaks for: closed to the attacker; the victim serves it to itself
    (control)."""
    _, addrs = victim.ssh("ip -6 addr show dev eth0 scope link", timeout=15)
    words = addrs.split()
    local = words[words.index("inet6") + 1].split("/")[0] if "inet6" in words else None
    url = f"'http://[{local}%eth0]:8080/'"
    _, itself = victim.ssh(f"timeout 4 wget -q -O - {url} 2>&1", timeout=15)
    _, out = attacker.ssh(f"timeout 4 wget -q -O - {url} 2>&1; echo exit=$?", timeout=15)
    report.check(who, f"ipv6: the victim's port 8080 at {local}", "hi-from-victim" in out,
                 bool(local) and "hi-from-victim" in itself,
                 {"attacker": out, "the victim to itself (control)": itself,
                  "the victim's link-local addresses": addrs})


def ip_spoofing(report, who, attacker, victim, base):
    """1. Packets with the victim's address as source never reach the
    router; the attacker's own do."""
    gw, vip = attacker.gateway, victim.address
    script = f"""
sysctl -qw net.ipv4.conf.eth0.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=8
ip addr add {vip}/32 dev eth0
ip route add {gw}/32 dev eth0 src {vip}
ip route get {gw}
timeout 2 tftp -g -l /dev/null -r spoofed-udp {gw} {base}
timeout 3 nc -w 2 {gw} {base + 1} </dev/null
ping -c 1 -W 1 {gw}
ip route del {gw}/32 dev eth0 src {vip}
ip addr del {vip}/32 dev eth0
sysctl -qw net.ipv4.conf.eth0.arp_announce=0 net.ipv4.conf.eth0.arp_ignore=0
timeout 2 tftp -g -l /dev/null -r own-udp {gw} {base + 2}
timeout 3 nc -w 2 {gw} {base + 3} </dev/null
echo done
"""
    _, out = attacker.ssh(script, timeout=40)
    spoofed = arrived(lambda r: r["src"] == vip and r["dst"] == gw
                      and (r["dport"] in (base, base + 1) or r["proto"] == "icmp"))
    own = arrived(lambda r: r["src"] == attacker.address and r["dport"] in (base + 2, base + 3),
                  settle=0)
    report.check(who, f"ip spoofing: UDP, TCP and ICMP from the victim's address {vip}",
                 bool(spoofed), {"udp", "tcp"} <= {r["proto"] for r in own},
                 {"arrived from the victim's address": shown(spoofed),
                  "arrived from the attacker's own (control)": shown(own), "attacker": out})


def answers(guest, port=22):
    """Whether guest completes a TCP handshake from the client within 4 s
    (its kernel answers; no user space in the way)."""
    code, out = run(["ip", "netns", "exec", CLIENT, "timeout", "4", "bash", "-c",
                     f"exec 3<>/dev/tcp/{guest.address}/{port}"], timeout=10)
    return code == 0, out


def mac_spoofing(report, who, attacker, victim, base):
    """2. Frames from a MAC that is not the attacker's (a made-up one, then
    the victim's) never reach the router, and the victim's traffic does not
    follow its MAC to the attacker; after restoring, the attacker's frames
    arrive."""
    gw, fake = attacker.gateway, "02:de:ad:00:be:ef"
    change = "ip link set eth0 address {m} || {{ ip link set eth0 down; " \
             "ip link set eth0 address {m}; ip link set eth0 up; }}; " \
             "ip route replace default via " + gw + " dev eth0; cat /sys/class/net/eth0/address"
    script = f"""
{change.format(m=fake)}
timeout 2 tftp -g -l /dev/null -r made-up-mac {gw} {base}
{change.format(m=victim.mac)}
timeout 2 tftp -g -l /dev/null -r victims-mac {gw} {base + 1}
{change.format(m=attacker.mac)}
sleep 1
timeout 2 tftp -g -l /dev/null -r own-mac {gw} {base + 2}
echo done
"""
    reached_before = answers(victim)
    _, out = attacker.ssh(script, timeout=40)
    # The victim has sent nothing since: if the bridge learned its MAC
    # from the attacker, what is meant for the victim goes to the attacker.
    reached_after = answers(victim)
    changed = fake in out and victim.mac in out
    spoofed = arrived(lambda r: r["dport"] in (base, base + 1)
                      and (r["mac"] == fake or (r["mac"] == victim.mac
                                                and r["src"] == attacker.address)))
    own = arrived(lambda r: r["dport"] == base + 2 and r["mac"] == attacker.mac, settle=0)
    report.check(who, f"mac spoofing: frames from {fake} and from the victim's {victim.mac}",
                 bool(spoofed) or not reached_after[0],
                 changed and bool(own) and reached_before[0],
                 {"arrived with a spoofed MAC": shown(spoofed),
                  "arrived after restoring (control)": shown(own),
                  "the victim answered TCP before (control)": reached_before,
                  "the victim answered TCP right after (its traffic did not go to the attacker)":
                      reached_after,
                  "attacker": out})


def poll_while(process, probe, every=0.25):
    """Calls probe until process ends; what it returned."""
    seen = []
    while process.poll() is None:
        seen.append(probe())
        time.sleep(every)
    seen.append(probe())
    return seen


def ssh_popen(guest, command):
    return subprocess.Popen(
        ["ip", "netns", "exec", os.environ["CLIENT_NETNS"], "ssh", "-i", guest.key_file,
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{guest.address}", command],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def arp_claims(claimed, towards):
    """Busybox arping claiming `claimed` from this guest's MAC: gratuitous
    requests, unsolicited replies, and requests aimed at `towards`."""
    return f"""
sysctl -qw net.ipv4.ip_nonlocal_bind=1
arping -U -c 3 -s {claimed} -I eth0 {claimed}
arping -A -c 3 -s {claimed} -I eth0 {claimed}
arping -c 3 -s {claimed} -I eth0 {towards}
sysctl -qw net.ipv4.ip_nonlocal_bind=0
echo done
"""


def arp_poisoning_gateway(report, who, attacker, victim):
    """3a. Claiming the victim's address towards the router does not move
    the router's neighbour entry for it to the attacker's MAC."""
    vip = victim.address
    router("ping", "-c", "1", "-W", "2", vip)
    before = neighbour_mac(vip)
    process = ssh_popen(attacker, arp_claims(vip, attacker.gateway))
    seen = poll_while(process, lambda: neighbour_mac(vip))
    out = process.communicate()[0]
    report.check(who, f"arp poisoning of the router: {vip} claimed from {attacker.mac}",
                 attacker.mac in seen, before == victim.mac and "done" in out,
                 {"router's entry before (control: the victim's MAC)": before,
                  "router's entry during the attack": sorted(set(map(str, seen))),
                  "attacker": out})


def arp_poisoning_victim(report, who, attacker, victim):
    """3b. Claiming the gateway's address towards the victim does not move
    the victim's ARP entry for its gateway to the attacker's MAC."""
    gw = victim.gateway
    victim.ssh_ok("rm -f /tmp/arp.log; setsid sh -c 'for i in $(seq 80); do cat /proc/net/arp; "
                  "sleep 0.25; done > /tmp/arp.log 2>&1' </dev/null >/dev/null 2>&1 &")
    time.sleep(1)
    _, out = attacker.ssh(arp_claims(gw, victim.address), timeout=40)
    time.sleep(2)
    try:
        log = victim.ssh_ok("cat /tmp/arp.log", within=60)
    except AssertionError as e:
        report.add("breached", who, f"arp poisoning of the victim: its gateway {gw} claimed",
                   {"the victim stayed unreachable over SSH": str(e), "attacker": out})
        return
    entries = sorted({l for l in log.splitlines() if l.startswith(gw + " ")})
    poisoned = [l for l in entries if attacker.mac in l.lower()]
    report.check(who, f"arp poisoning of the victim: its gateway {gw} claimed from {attacker.mac}",
                 bool(poisoned), bool(entries) and "done" in out,
                 {"victim's entries for its gateway": entries, "attacker": out})


def metadata(report, who, attacker, victim):
    """5. The attacker reads its own metadata (control), never the victim's:
    not by a header, not with the victim's address and ARP claims for it."""
    md = "http://169.254.169.254/latest"
    own_script = (f"timeout 5 wget -q -O - {md}/meta-data/instance-id; echo; "
                  f"timeout 5 wget -q -O - {md}/user-data; "
                  f"timeout 5 wget -q -O - --header 'X-Forwarded-For: {victim.address}' "
                  f"{md}/user-data")
    _, own = attacker.ssh(own_script, timeout=30)
    vip, gw = victim.address, attacker.gateway
    spoof_script = f"""
ip addr add {vip}/32 dev eth0
ip route add 169.254.169.254/32 via {gw} dev eth0 src {vip}
setsid arping -U -c 15 -s {vip} -I eth0 {vip} </dev/null >/dev/null 2>&1 &
sleep 1
for i in 1 2; do
  timeout 3 wget -q -O - {md}/user-data
  timeout 3 wget -q -O - {md}/meta-data/instance-id
  echo " try $i exit=$?"
done
ip route del 169.254.169.254/32
ip addr del {vip}/32 dev eth0
killall arping
echo done
"""
    _, spoofed = attacker.ssh(spoof_script, timeout=60)
    leaked = [w for w in (SECRET, victim.iid) if w in own or w in spoofed]
    report.check(who, "metadata: the victim's user data and instance id",
                 bool(leaked), attacker.iid in own and f"data of {attacker.name}" in own,
                 {"leaked": leaked, "own metadata (control)": own, "with the victim's address": spoofed})


def rogue_dhcp_start(attacker):
    """4. Starts a DHCP server on the attacker offering a bogus address and
    itself as the router; its log and whether it runs."""
    script = f"""
cat > /tmp/udhcpd.conf <<EOF
start 10.66.0.50
end 10.66.0.60
interface eth0
max_leases 10
lease_file /tmp/udhcpd.leases
opt router {attacker.address}
opt subnet 255.255.0.0
opt dns {attacker.address}
EOF
touch /tmp/udhcpd.leases
setsid udhcpd -f -a 1 /tmp/udhcpd.conf </dev/null >/tmp/udhcpd.log 2>&1 &
sleep 1
pidof udhcpd && echo rogue running
"""
    return attacker.ssh(script, timeout=20)[1]


def rogue_dhcp_check(report, who, attacker, fresh, started, gateways):
    """4. No DHCP reply from the attacker goes out on the network, and fresh
    guests got the address stratus allocated and the real router."""
    _, log = attacker.ssh("pidof udhcpd && echo still running; cat /tmp/udhcpd.log; "
                          "killall udhcpd", timeout=20)
    offers = arrived(lambda r: r["proto"] == "dhcp-reply" and r["mac"] == attacker.mac, settle=0)
    got = {}
    wrong = {}
    for guest in fresh:
        out = guest.console()
        lines = [l for l in out.splitlines() if "network eth0" in l or "route:" in l]
        got[guest.name] = lines
        expected_net = f"STRATUS-BOOT network eth0 {guest.address}/"
        expected_route = f"route: default via {gateways[guest.name]} "
        if expected_net not in out or expected_route not in out:
            wrong[guest.name] = {"allocated": guest.address, "router": gateways[guest.name],
                                 "console": lines}
    report.check(who, "rogue dhcp: offers on the wire, fresh guests' address and router",
                 bool(wrong) or bool(offers),
                 "rogue running" in started and "still running" in log and "sending OFFER" in log,
                 {"the rogue's DHCP replies seen on the bridge": shown(offers),
                  "fresh guests with another address or router": wrong, "fresh guests": got,
                  "rogue server start (control: it ran)": started,
                  "rogue server log (control: it offered)": log})


def public_ssh(guest, address, command, timeout=20):
    """SSH from the outside (the client namespace) to `address`."""
    return run(["ip", "netns", "exec", CLIENT, "ssh", "-i", guest.key_file,
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={min(timeout, 10)}", f"root@{address}", command],
               timeout=timeout + 5)


def public_address_hijack(report, who, attacker, victim, public, base):
    """7. Claiming the victim's public address from the attacker's guest
    (bound on its interface, announced by ARP on its bridge, used as the
    source of its packets) neither moves the address — from the outside it
    still reaches the victim, during and after the claims — nor gets a
    packet with that source past the attacker's port."""
    md = "http://169.254.169.254/latest/meta-data/instance-id"
    _, before = public_ssh(victim, public, f"timeout 5 wget -q -O - {md}", timeout=20)
    gw = attacker.gateway
    script = f"""
sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv4.conf.eth0.arp_announce=2
ip addr add {public}/32 dev eth0
setsid arping -U -c 20 -s {public} -I eth0 {public} </dev/null >/dev/null 2>&1 &
setsid arping -c 20 -s {public} -I eth0 {gw} </dev/null >/dev/null 2>&1 &
ip route add {gw}/32 dev eth0 src {public}
timeout 2 tftp -g -l /dev/null -r spoofed-public {gw} {base}
timeout 3 nc -w 2 {gw} {base + 1} </dev/null
sleep 3
ip route del {gw}/32 dev eth0 src {public}
ip addr del {public}/32 dev eth0
killall arping
sysctl -qw net.ipv4.ip_nonlocal_bind=0 net.ipv4.conf.eth0.arp_announce=0
echo done
"""
    process = ssh_popen(attacker, script)
    time.sleep(1.5)
    _, during = public_ssh(victim, public, f"timeout 5 wget -q -O - {md}", timeout=20)
    out = process.communicate(timeout=60)[0]
    _, after = public_ssh(victim, public, f"timeout 5 wget -q -O - {md}", timeout=20)
    spoofed = arrived(lambda r: r["src"] == public and r["dport"] in (base, base + 1))
    answered_by = {"before (control)": before, "during the claims": during, "after": after}
    stolen = victim.iid not in during or victim.iid not in after
    report.check(who, f"public address hijack: {public} claimed from {attacker.mac}",
                 stolen or bool(spoofed),
                 victim.iid in before and "done" in out,
                 {"who answered on the public address": answered_by,
                  "arrived with the public address as source": shown(spoofed),
                  "attacker": out})
