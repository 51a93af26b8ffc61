"""Guests of the isolation test (tests/it/isolation.rs) and how the test
reaches them: boto3 per project, SSH from the client namespace, the serial
console, commands in the router namespace, and the record of outcomes."""

import json
import os
import subprocess
import time

import boto3
from botocore.config import Config

ENDPOINT = os.environ["STRATUS_ENDPOINT"]
CLIENT = os.environ["CLIENT_NETNS"]
ROUTER = os.environ["ROUTER_NETNS"]
CLIENT_ADDRESS = os.environ["CLIENT_ADDRESS"]
# The client's source on the public link (it holds the public range's
# gateway there, as the outside's router does).
PUBLIC_GATEWAY = os.environ["PUBLIC_GATEWAY"]
WORK = os.environ["WORK"]


def ec2(project):
    return boto3.client("ec2", endpoint_url=ENDPOINT, region_name="nova",
                        aws_access_key_id=os.environ[f"{project}_KEY"],
                        aws_secret_access_key=os.environ[f"{project}_SECRET"],
                        config=Config(retries={"max_attempts": 1}))


def run(argv, timeout=30):
    """Runs argv; (exit code, stdout + stderr), never raising on failure."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        parts = [p.decode(errors="replace") if isinstance(p, bytes) else p
                 for p in (e.stdout, e.stderr) if p]
        return 124, "".join(parts) + "[timed out]"


def router(*argv, timeout=15):
    return run(["ip", "netns", "exec", ROUTER, *argv], timeout=timeout)


def neighbour_mac(address):
    """The router's neighbour entry for address on the device it routes
    address through: its MAC, or None."""
    _, route = router("ip", "-o", "route", "get", address)
    words = route.split()
    dev = words[words.index("dev") + 1] if "dev" in words else "lo"
    _, out = router("ip", "neigh", "show", address, "dev", dev)
    words = out.split()
    return words[words.index("lladdr") + 1].lower() if "lladdr" in words else None


class Report:
    """Each attempt's outcome: held, breached (the attack worked) or
    control-failed (the harness could not show the attack would be seen)."""

    def __init__(self):
        self.rows = []
        self.started = time.time()

    def add(self, outcome, attacker, attempt, evidence):
        self.rows.append({"outcome": outcome, "attacker": attacker, "attempt": attempt,
                          "evidence": evidence})
        print(f"isolation: {time.time() - self.started:5.0f}s {outcome:14} {attacker}: {attempt}",
              flush=True)

    def check(self, attacker, attempt, breached, control_ok, evidence):
        if not control_ok:
            self.add("control-failed", attacker, attempt, evidence)
        elif breached:
            self.add("breached", attacker, attempt, evidence)
        else:
            self.add("held", attacker, attempt, evidence)

    def dump(self):
        print("REPORT " + json.dumps(self.rows), flush=True)


class Guest:
    """One instance: its project's client, id, address, MAC and key."""

    def __init__(self, name, client, iid, key_file):
        self.name, self.client, self.iid, self.key_file = name, client, iid, key_file
        self.address = None
        self.mac = None
        self.gateway = None

    def describe(self):
        return self.client.describe_instances(InstanceIds=[self.iid])["Reservations"][0]["Instances"][0]

    def console(self):
        return self.client.get_console_output(InstanceId=self.iid).get("Output", "")

    def wait_console(self, text, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.console()
            if text in out:
                return out
            time.sleep(1)
        raise AssertionError(f"{text!r} not on the console of {self.name} ({self.iid}) "
                             f"within {timeout}s:\n{self.console()}")

    def ssh(self, command, timeout=20):
        return run(["ip", "netns", "exec", CLIENT, "ssh", "-i", self.key_file,
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                    "-o", f"ConnectTimeout={min(timeout, 10)}", f"root@{self.address}", command],
                   timeout=timeout + 5)

    def ssh_ok(self, command, timeout=20, within=60):
        """SSH until it works (a guest may be slow, or a network recovering)."""
        deadline = time.time() + within
        while True:
            code, out = self.ssh(command, timeout=timeout)
            if code == 0:
                return out
            if time.time() > deadline:
                raise AssertionError(f"SSH into {self.name} ({self.address}) keeps failing: {out}")
            time.sleep(1)


def key_pair(client, name):
    material = client.create_key_pair(KeyName=name, KeyType="ed25519")["KeyMaterial"]
    path = os.path.join(WORK, f"{name}.pem")
    with open(path, "w") as f:
        f.write(material + "\n")
    os.chmod(path, 0o600)
    return path


def ssh_group(client, name):
    """A group allowing SSH from the test's client only: on its link to
    the router and on the public link."""
    sg = client.create_security_group(GroupName=name, Description=f"isolation {name}")["GroupId"]
    client.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": f"{CLIENT_ADDRESS}/32"}, {"CidrIp": f"{PUBLIC_GATEWAY}/32"}]}])
    return sg


def launch(name, client, key, key_file, sg, user_data):
    iid = client.run_instances(ImageId=os.environ["IMAGE"], MinCount=1, MaxCount=1,
                               InstanceType="m1.tiny", KeyName=key, SecurityGroupIds=[sg],
                               UserData=user_data)["Instances"][0]["InstanceId"]
    return Guest(name, client, iid, key_file)


def ready(guest):
    """Waits for the guest to run and finish booting; learns its address,
    gateway and MAC."""
    guest.client.get_waiter("instance_running").wait(
        InstanceIds=[guest.iid], WaiterConfig={"Delay": 1, "MaxAttempts": 240})
    guest.address = guest.describe()["PrivateIpAddress"]
    out = guest.wait_console("STRATUS-BOOT ready")
    assert f"STRATUS-BOOT network eth0 {guest.address}/" in out, out
    facts = guest.ssh_ok("cat /sys/class/net/eth0/address; ip route show default")
    lines = facts.split("\n")
    guest.mac = lines[0].strip().lower()
    guest.gateway = lines[1].split()[2]
    return guest
