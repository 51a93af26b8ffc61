"""The user's side of the end-to-end test (tests/it/end_to_end.rs): boto3
against stratus services running as separate processes over RabbitMQ, one
real guest under QEMU, SSH from a client namespace that reaches the guests
through the namespace's router (and so through the security groups).

Environment: STRATUS_ENDPOINT, E2E_KEY, E2E_SECRET, E2E_IMAGE, CLIENT_NETNS,
WORK (a scratch folder). Prints "e2e ok <instance-id>" when every step held.
"""

import base64
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config

ENDPOINT = os.environ["STRATUS_ENDPOINT"]
CLIENT = os.environ["CLIENT_NETNS"]
WORK = os.environ["WORK"]


def console(ec2, iid):
    out = ec2.get_console_output(InstanceId=iid).get("Output", "")
    return out


def wait_console(ec2, iid, text, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = console(ec2, iid)
        if text in out:
            return out
        time.sleep(1)
    raise AssertionError(f"{text!r} not on the console of {iid} within {timeout}s:\n{console(ec2, iid)}")


def ssh(key, address, command, timeout=20):
    return subprocess.run(
        ["ip", "netns", "exec", CLIENT, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "-o", f"ConnectTimeout={timeout}", f"root@{address}", command],
        capture_output=True, text=True, timeout=timeout + 10)


def main():
    ec2 = boto3.client("ec2", endpoint_url=ENDPOINT, region_name="nova",
                       aws_access_key_id=os.environ["E2E_KEY"],
                       aws_secret_access_key=os.environ["E2E_SECRET"],
                       config=Config(retries={"max_attempts": 1}))

    # 1. A key pair, a group without SSH, an instance with user data.
    key = ec2.create_key_pair(KeyName="e2e", KeyType="ed25519")
    key_file = os.path.join(WORK, "e2e.pem")
    with open(key_file, "w") as f:
        f.write(key["KeyMaterial"] + "\n")
    os.chmod(key_file, 0o600)
    public = subprocess.run(["ssh-keygen", "-y", "-f", key_file], capture_output=True, text=True,
                            check=True).stdout.strip()
    with open(key_file + ".pub", "w") as f:
        f.write(public + "\n")
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", key_file + ".pub"],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    sg = ec2.create_security_group(GroupName="e2e", Description="end to end")["GroupId"]
    user_data = "#!/bin/sh\necho user data says hello from $(hostname)\n"
    run = ec2.run_instances(ImageId=os.environ["E2E_IMAGE"], MinCount=1, MaxCount=1,
                            InstanceType="m1.tiny", KeyName="e2e", SecurityGroupIds=[sg],
                            UserData=user_data)
    iid = run["Instances"][0]["InstanceId"]

    # 2. Running, an address by DHCP, the injected key's fingerprint on the console.
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 240})
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    address = inst["PrivateIpAddress"]
    out = wait_console(ec2, iid, "STRATUS-BOOT ready")
    assert f"STRATUS-BOOT network eth0 {address}/" in out, out
    assert f"authorized key ssh-ed25519 {fingerprint}" in out, (fingerprint, out)

    # 4. Its id from the metadata service; the user data ran.
    assert f"STRATUS-BOOT instance-id {iid}" in out, out
    assert "STRATUS-BOOT user-data: user data says hello" in out, out

    # 3. SSH is dropped without a port-22 rule, and works with one.
    refused = ssh(key_file, address, "true", timeout=8)
    assert refused.returncode != 0, "SSH got in without a port-22 rule"
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    deadline = time.time() + 60
    while True:
        done = ssh(key_file, address, "cat /etc/stratus-image; wget -q -O - http://169.254.169.254/latest/meta-data/instance-id")
        if done.returncode == 0:
            break
        assert time.time() < deadline, f"SSH still failing after the rule: {done.stderr}"
        time.sleep(1)
    assert "stratus tiny image" in done.stdout and iid in done.stdout, done.stdout

    # 5. Terminate (the Rust side checks nothing is left).
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    print(f"e2e ok {iid} {address}")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - report any failure with its trace
        import traceback
        traceback.print_exc()
        sys.exit(1)
