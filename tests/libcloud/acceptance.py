"""apache-libcloud's EC2 driver, unchanged, against stratus (issue 19), as a
user of a custom EC2 cloud writes it: host, port and secure given to the
driver's constructor, the default region (us-east-1, for which libcloud
signs with SigV2), NodeSize and NodeImage built by id. Run by
tests/it/libcloud.rs.

Environment: STRATUS_ENDPOINT (http://host:port/), KEY, SECRET, IMAGE,
CLIENT_NETNS (the namespace the outside's SSH client runs in), PUBLIC_RANGE,
WORK. Prints progress lines ("libcloud: …") and one "REPORT {json}" line:
ok, the step reached, what each step saw, and the error with its traceback.
"""

import ipaddress
import json
import os
import subprocess
import sys
import time
import traceback
from urllib.parse import urlparse

from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider

ENDPOINT = urlparse(os.environ["STRATUS_ENDPOINT"])
CLIENT = os.environ["CLIENT_NETNS"]
PUBLIC_RANGE = ipaddress.ip_network(os.environ["PUBLIC_RANGE"])
WORK = os.environ["WORK"]
STARTED = time.time()

REPORT = {"ok": False, "step": "start", "seen": {}}


def step(name):
    REPORT["step"] = name
    print(f"libcloud: {time.time() - STARTED:5.0f}s {name}", flush=True)


def saw(key, value):
    REPORT["seen"][key] = value


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def outside(*argv, timeout=30):
    """argv run in the client namespace; (exit code, output)."""
    try:
        done = subprocess.run(["ip", "netns", "exec", CLIENT, *argv], capture_output=True,
                              text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        return 124, "[timed out]"


def ssh(key_file, address, command):
    return outside("ssh", "-i", key_file, "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                   "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", f"root@{address}", command,
                   timeout=40)


def instance_id_over_ssh(key_file, address, within):
    """The instance id the guest at address answers over SSH from the
    outside (from its metadata), waiting up to `within` seconds."""
    deadline = time.time() + within
    while True:
        code, out = ssh(key_file, address,
                        "timeout 5 wget -q -O - http://169.254.169.254/latest/meta-data/instance-id")
        if code == 0 and out.strip().startswith("i-"):
            return out.strip()
        if time.time() > deadline:
            raise AssertionError(f"ssh root@{address} from the outside kept failing: {out}")
        time.sleep(1)


def tcp_open(address, port):
    code, _ = outside("timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}",
                      timeout=10)
    return code == 0


def wait_closed(address, port, within=30):
    deadline = time.time() + within
    while tcp_open(address, port):
        if time.time() > deadline:
            raise AssertionError(f"{address}:{port} still answers from the outside")
        time.sleep(0.5)


def addresses(driver, only_associated=False):
    return {a.ip: a for a in driver.ex_describe_all_addresses(only_associated=only_associated)}


def node_of(driver, node_id):
    found = [n for n in driver.list_nodes() if n.id == node_id]
    check(len(found) == 1, f"list_nodes shows {node_id} {len(found)} times")
    return found[0]


def elastic_ip_round(driver, node, key_file, domain):
    """Allocate, associate, reach, describe, disassociate, release one
    Elastic IP in libcloud's two forms: "standard" (its default: no Domain
    sent, then everything by PublicIp, as EC2-Classic did) and "vpc" (by
    allocation and association ids)."""
    form = None if domain == "standard" else "vpc"
    step(f"{domain}: ex_allocate_address")
    eip = driver.ex_allocate_address(domain=domain)
    saw(f"{domain}_address", eip.ip)
    saw(f"{domain}_domain", eip.domain)
    check(ipaddress.ip_address(eip.ip) in PUBLIC_RANGE, f"{eip.ip} not in {PUBLIC_RANGE}")
    # With no Domain, AWS (EC2-Classic retired) allocates for the VPC.
    check(eip.domain in (("standard", "vpc") if form is None else ("vpc",)),
          f"domain {eip.domain!r}")
    domain_given = eip.domain
    if domain == "vpc":
        check(eip.extra.get("allocation_id", "").startswith("eipalloc-"), f"{eip.extra}")
    step(f"{domain}: ex_associate_address_with_node")
    association = driver.ex_associate_address_with_node(node, eip, domain=form)
    saw(f"{domain}_association", association)
    if domain == "vpc":
        check((association or "").startswith("eipassoc-"), f"association id {association!r}")
    step(f"{domain}: reachable on the Elastic IP")
    answered = instance_id_over_ssh(key_file, eip.ip, within=30)
    check(answered == node.id, f"{eip.ip} reaches {answered}, not {node.id}")
    step(f"{domain}: list_nodes shows the Elastic IP")
    listed = node_of(driver, node.id)
    check(eip.ip in listed.public_ips, f"public_ips {listed.public_ips}")
    step(f"{domain}: ex_describe_all_addresses")
    described = addresses(driver).get(eip.ip)
    check(described is not None, f"{eip.ip} not described")
    check(described.instance_id == node.id, f"instance {described.instance_id}")
    check(described.domain == domain_given, f"domain {described.domain!r}")
    check(eip.ip in addresses(driver, only_associated=True), "not among the associated")
    if domain == "vpc":
        check(described.extra.get("association_id") == association,
              f"association {described.extra.get('association_id')} != {association}")
    step(f"{domain}: ex_disassociate_address")
    check(driver.ex_disassociate_address(described, domain=form) is True, "not disassociated")
    after = addresses(driver).get(eip.ip)
    check(after is not None and not after.instance_id, f"still associated: {after}")
    check(eip.ip not in addresses(driver, only_associated=True), "still among the associated")
    wait_closed(eip.ip, 22)
    step(f"{domain}: ex_release_address")
    check(driver.ex_release_address(after, domain=form) is True, "not released")
    check(eip.ip not in addresses(driver), f"{eip.ip} still described after release")


def main():
    step("driver")
    cls = get_driver(Provider.EC2)
    driver = cls(os.environ["KEY"], os.environ["SECRET"], host=ENDPOINT.hostname,
                 port=ENDPOINT.port, secure=False)
    saw("region", driver.region_name)
    saw("signature_version", str(driver.signature_version))

    step("import_key_pair_from_string")
    key_file = os.path.join(WORK, "libcloud-key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key_file], check=True,
                   stdin=subprocess.DEVNULL)
    with open(key_file + ".pub") as f:
        driver.import_key_pair_from_string("lc", f.read().strip())

    step("ex_create_security_group")
    group = driver.ex_create_security_group("lc-ssh", "libcloud acceptance: SSH")
    check(group["group_id"], f"no group id: {group}")
    check(driver.ex_authorize_security_group_ingress(group["group_id"], 22, 22,
                                                     cidr_ips=["0.0.0.0/0"]) is True,
          "rule not added")

    step("create_node")
    size = NodeSize(id="m1.tiny", name="m1.tiny", ram=512, disk=1, bandwidth=None, price=None,
                    driver=driver)
    image = NodeImage(id=os.environ["IMAGE"], name="tiny", driver=driver)
    node = driver.create_node(name="lc-node", size=size, image=image, ex_keyname="lc",
                              ex_security_groups=["lc-ssh"])
    saw("node", node.id)

    step("wait_until_running")
    [(running, ips)] = driver.wait_until_running([node], wait_period=2, timeout=240)
    saw("public_ips", ips)
    check(running.id == node.id, f"waited for {running.id}")
    check(len(ips) >= 1 and ipaddress.ip_address(ips[0]) in PUBLIC_RANGE,
          f"wait_until_running gave {ips}, not an address of {PUBLIC_RANGE}")
    public_ip = ips[0]
    saw("public_ip", public_ip)

    step("reachable on its public IP")
    answered = instance_id_over_ssh(key_file, public_ip, within=180)
    check(answered == node.id, f"{public_ip} reaches {answered}, not {node.id}")

    step("list_nodes shows the public IP")
    listed = node_of(driver, node.id)
    check(listed.state == NodeState.RUNNING, f"state {listed.state}")
    check(public_ip in listed.public_ips, f"public_ips {listed.public_ips}")
    saw("private_ips", listed.private_ips)

    for domain in ("standard", "vpc"):
        elastic_ip_round(driver, node, key_file, domain)

    step("a public IP again after the Elastic IPs")
    [(_, ips)] = driver.wait_until_running([node], wait_period=2, timeout=30)
    saw("public_ips_after", ips)
    answered = instance_id_over_ssh(key_file, ips[0], within=30)
    check(answered == node.id, f"{ips[0]} reaches {answered}, not {node.id}")

    step("destroy_node")
    check(driver.destroy_node(node) is True, "destroy_node said no")
    deadline = time.time() + 120
    while True:
        gone = [n for n in driver.list_nodes() if n.id == node.id]
        if not gone or gone[0].state == NodeState.TERMINATED:
            break
        check(time.time() < deadline, f"{node.id} still {gone[0].state}")
        time.sleep(2)
    wait_closed(ips[0], 22)
    step("done")
    REPORT["ok"] = True


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported, the Rust side fails on it
        REPORT["error"] = f"{type(e).__name__}: {e}"
        REPORT["traceback"] = traceback.format_exc()
    print("REPORT " + json.dumps(REPORT), flush=True)
    sys.exit(0 if REPORT["ok"] else 1)
