"""A whole life of an EC2 user against stratus, with boto3 and the AWS CLI.

Run by the Rust test `ec2_api` (tests/it/ec2_api.rs), which starts the cloud
in process and passes endpoints and keys in the environment. Every raw
response, boto3's and (from its --debug log) the AWS CLI's, is saved to
$RESPONSES_DIR as <Operation>.<status>.<n>.xml so that ec2_check.py can hold
each one against botocore's EC2 model afterwards.
Any failed expectation raises, so the process exits non-zero.
"""

import ast
import base64
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from botocore.exceptions import ClientError

from addresses import address_life
from attributes import attribute_life
from egress import egress_life
from sts import sts_life
from launch_options import launch_options_life
from vpcs import vpc_life

ENDPOINT = os.environ["STRATUS_ENDPOINT"]
REGION = os.environ.get("STRATUS_REGION", "nova")
A = (os.environ["ALPHA_KEY"], os.environ["ALPHA_SECRET"])
B = (os.environ["BETA_KEY"], os.environ["BETA_SECRET"])
IMAGE_PATH = os.environ["IMAGE_PATH"]
OUT = os.environ["RESPONSES_DIR"]
AWS = os.environ.get("AWS_CLI", "aws")
_saved = [0]


def save(http_response, model, **_):
    """Keeps each raw response for the botocore model check."""
    _saved[0] += 1
    name = f"{model.name}.{http_response.status_code}.{_saved[0]}.xml"
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(http_response.content)


def client(creds):
    c = boto3.client(
        "ec2",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        config=Config(retries={"max_attempts": 1}),
    )
    c.meta.events.register("after-call.ec2", save)
    return c


def _save_cli(stderr):
    """Keeps each raw response the AWS CLI got (from its --debug log, where
    botocore writes the operation, the status and the body in that order)."""
    op = status = None
    lines = stderr.splitlines()
    for n, line in enumerate(lines):
        if m := re.search(r"OperationModel\(name=(\w+)\)", line):
            op = m.group(1)
        elif m := re.search(r'"POST / HTTP/1\.1" (\d{3}) ', line):
            status = m.group(1)
        elif line.endswith("Response body:") and n + 1 < len(lines) and op and status:
            body = ast.literal_eval(lines[n + 1])
            _saved[0] += 1
            with open(os.path.join(OUT, f"{op}.{status}.{_saved[0]}.xml"), "wb") as f:
                f.write(body)
            op = status = None


def _run_cli(creds, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=creds[0], AWS_SECRET_ACCESS_KEY=creds[1],
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    done = subprocess.run([AWS, "--debug", "--endpoint-url", ENDPOINT, "--output", "json", "ec2",
                           *args], env=env, capture_output=True, text=True, timeout=60)
    _save_cli(done.stderr)
    return done


def cli(creds, *args):
    """Runs the AWS CLI; returns its parsed JSON output."""
    done = _run_cli(creds, *args)
    if done.returncode != 0:
        raise AssertionError(f"aws ec2 {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def cli_error(creds, *args):
    """Runs the AWS CLI expecting the service to refuse; returns the error
    it printed."""
    done = _run_cli(creds, *args)
    # 255: AWS CLI v1's exit code for any failed call (v2 says 254 for a
    # refusal by the service); the error code printed says which.
    shown = done.stderr.splitlines()[-3:]
    assert done.returncode == 255, f"aws ec2 {args} exited {done.returncode}: {shown}"
    return "\n".join(shown)


def cli_code(creds, code, *args):
    """Runs the AWS CLI expecting the service to refuse with `code`."""
    stderr = cli_error(creds, *args)
    assert f"({code})" in stderr, f"aws ec2 {args}: expected {code}, got {stderr}"


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert e.response["ResponseMetadata"].get("RequestId"), "error without a request id"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def raw(action, params, creds=A, when=None, version=4, secret=None):
    """Sends a hand-signed POST; returns (status, body)."""
    body = {"Action": action, "Version": "2016-11-15", **params}
    request = botocore.awsrequest.AWSRequest(method="POST", url=ENDPOINT, data=body)
    credentials = botocore.credentials.Credentials(creds[0], secret or creds[1])
    if version == 4:
        signer = botocore.auth.SigV4Auth(credentials, "ec2", REGION)
    else:
        signer = botocore.auth.SigV2Auth(credentials)
    if when is not None:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when, create=True), \
             mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = when
            dt.datetime.now.return_value = when
            dt.timezone = datetime.timezone
            signer.add_auth(request)
    else:
        signer.add_auth(request)
    prepared = request.prepare()
    data = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    req = urllib.request.Request(prepared.url, data=data, method="POST",
                                 headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, content = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, content = e.code, e.read()
    _saved[0] += 1
    with open(os.path.join(OUT, f"{action}.{status}.{_saved[0]}.xml"), "wb") as f:
        f.write(content)
    return status, content.decode()


def wait(ec2, waiter, ids):
    try:
        ec2.get_waiter(waiter).wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    except Exception:
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for i in r["Instances"]:
                print(i["InstanceId"], i["State"], i.get("StateReason"), i.get("StateTransitionReason"))
        raise


def main():
    alpha, beta = client(A), client(B)

    # Key pairs: created by the CLI (RSA), by boto3 (ED25519), imported.
    key = cli(A, "create-key-pair", "--key-name", "life-key")
    assert key["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----"), key
    assert len(key["KeyFingerprint"].split(":")) == 20, key["KeyFingerprint"]
    ed = alpha.create_key_pair(KeyName="life-ed", KeyType="ed25519")
    assert ed["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert len(ed["KeyFingerprint"]) == 44 and ed["KeyFingerprint"].endswith("="), ed["KeyFingerprint"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        with open(path + ".pub", "rb") as f:
            imported = alpha.import_key_pair(KeyName="life-imported", PublicKeyMaterial=f.read())
    assert imported["KeyFingerprint"].endswith("=")
    expect_error("InvalidKeyPair.Duplicate", alpha.create_key_pair, KeyName="life-key")
    names = {k["KeyName"] for k in alpha.describe_key_pairs()["KeyPairs"]}
    assert names == {"life-key", "life-ed", "life-imported"}, names
    expect_error("InvalidKeyPair.NotFound", alpha.describe_key_pairs, KeyNames=["nope"])
    assert beta.describe_key_pairs()["KeyPairs"] == [], "beta sees alpha's keys"

    # An image from a file under the image folders.
    ami = alpha.register_image(Name="life-image", ImageLocation=IMAGE_PATH)["ImageId"]
    images = alpha.describe_images(Owners=["self"])["Images"]
    assert [i["ImageId"] for i in images] == [ami], images
    assert images[0]["State"] == "available"
    expect_error("InvalidAMIID.NotFound", beta.describe_images, ImageIds=[ami])
    expect_error("InvalidParameterValue", alpha.register_image, Name="evil", ImageLocation="/etc/shadow")

    # A security group allowing SSH (the CLI's flat form), and one unused.
    sg = alpha.create_security_group(GroupName="web", Description="web servers")["GroupId"]
    cli(A, "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22",
        "--cidr", "0.0.0.0/0")
    alpha.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
        "UserIdGroupPairs": [{"GroupId": sg}]}])
    expect_error("InvalidPermission.Duplicate", alpha.authorize_security_group_ingress, GroupId=sg,
                 IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    expect_error("InvalidParameterValue", alpha.authorize_security_group_ingress, GroupId=sg,
                 IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                 "IpRanges": [{"CidrIp": "0.0.0.0/0; rm -rf /"}]}])
    perms = alpha.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert {(p["FromPort"], bool(p["IpRanges"]), bool(p["UserIdGroupPairs"])) for p in perms} == \
        {(22, True, False), (80, False, True)}, perms
    spare = alpha.create_security_group(GroupName="spare", Description="unused")["GroupId"]
    expect_error("InvalidGroup.Duplicate", alpha.create_security_group, GroupName="web", Description="again")
    groups = {g["GroupName"] for g in alpha.describe_security_groups()["SecurityGroups"]}
    assert groups == {"default", "web", "spare"}, groups
    assert {g["GroupName"] for g in beta.describe_security_groups()["SecurityGroups"]} == {"default"}

    # Egress rules: the default one, authorize, revoke (egress.py).
    egress_life(alpha, beta, expect_error, lambda *args: cli(A, *args))

    # DryRun and bad input change nothing.
    expect_error("DryRunOperation", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=1, DryRun=True)
    expect_error("InvalidParameterValue", alpha.run_instances, ImageId=ami, MinCount=3, MaxCount=2)
    expect_error("InvalidAMIID.NotFound", alpha.run_instances, ImageId="ami-00000000000000bad",
                 MinCount=1, MaxCount=1)
    expect_error("InvalidKeyPair.NotFound", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                 KeyName="nope")
    expect_error("InvalidGroup.NotFound", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                 SecurityGroups=["nope"])
    expect_error("InvalidParameterValue", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                 InstanceType="m9.huge")
    expect_error("InvalidParameterValue", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                 Placement={"AvailabilityZone": "nova:some-host"})
    assert alpha.describe_instances()["Reservations"] == [], "a refused request left instances"

    # Three instances with tags, user data and a client token.
    user_data = "#!/bin/sh\necho hello from user data\n"
    run = dict(ImageId=ami, MinCount=3, MaxCount=3, InstanceType="m1.tiny", KeyName="life-key",
               SecurityGroupIds=[sg], UserData=user_data, ClientToken="life-token-1",
               Placement={"AvailabilityZone": "nova"},
               TagSpecifications=[{"ResourceType": "instance",
                                   "Tags": [{"Key": "Name", "Value": "life"}, {"Key": "env", "Value": "test"}]}])
    reservation = alpha.run_instances(**run)
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    assert len(ids) == 3 and all(i["State"]["Name"] == "pending" for i in reservation["Instances"])
    assert {t["Key"] for t in reservation["Instances"][0]["Tags"]} == {"Name", "env"}
    again = alpha.run_instances(**run)
    assert again["ReservationId"] == reservation["ReservationId"], "client token not honoured"
    wait(alpha, "instance_running", ids)

    # Four more (one reservation) for pagination; quota is 8 instances.
    more = alpha.run_instances(ImageId=ami, MinCount=4, MaxCount=4, InstanceType="m1.tiny")
    more_ids = [i["InstanceId"] for i in more["Instances"]]
    wait(alpha, "instance_running", more_ids)
    expect_error("InstanceLimitExceeded", alpha.run_instances, ImageId=ami, MinCount=2, MaxCount=2,
                 InstanceType="m1.tiny")

    # Describe with filters and pages.
    def found(**kw):
        return sorted(i["InstanceId"] for r in alpha.describe_instances(**kw)["Reservations"]
                      for i in r["Instances"])
    assert found() == sorted(ids + more_ids)
    f = lambda name, *values: {"Name": name, "Values": list(values)}
    assert found(Filters=[f("tag:env", "test"), f("instance-state-name", "running")]) == sorted(ids)
    assert found(Filters=[f("instance-type", "m1.tiny")]) == sorted(ids + more_ids)
    assert found(Filters=[f("key-name", "life-key")]) == sorted(ids)
    assert found(Filters=[f("image-id", ami)]) == sorted(ids + more_ids)
    assert found(Filters=[f("availability-zone", "nova")]) == sorted(ids + more_ids)
    assert found(Filters=[f("reservation-id", reservation["ReservationId"])]) == sorted(ids)
    assert found(Filters=[f("tag-key", "Name")]) == sorted(ids)
    assert found(Filters=[f("instance-id", ids[0], ids[1])]) == sorted(ids[:2])
    assert found(Filters=[f("tag:Name", "li*")]) == sorted(ids)
    one = alpha.describe_instances(InstanceIds=[ids[0]])["Reservations"][0]["Instances"][0]
    ip = one["PrivateIpAddress"]
    assert found(Filters=[f("private-ip-address", ip)]) == [ids[0]]
    assert one["Placement"]["AvailabilityZone"] == "nova" and one["KeyName"] == "life-key"
    assert [g["GroupId"] for g in one["SecurityGroups"]] == [sg]
    expect_error("InvalidParameterValue", alpha.describe_instances, Filters=[f("colour", "red")])
    pages = list(alpha.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    per_page = [sum(len(r["Instances"]) for r in p["Reservations"]) for p in pages]
    assert per_page == [5, 2], per_page
    cli_ids = sorted(i["InstanceId"] for r in cli(A, "describe-instances", "--filters",
                                                   "Name=tag:env,Values=test")["Reservations"]
                     for i in r["Instances"])
    assert cli_ids == sorted(ids)

    # Console, attributes, status.
    out = alpha.get_console_output(InstanceId=ids[0])
    assert "booted" in out["Output"], out
    attr = alpha.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(attr["UserData"]["Value"]).decode() == user_data
    attr = alpha.describe_instance_attribute(InstanceId=ids[0], Attribute="instanceType")
    assert attr["InstanceType"]["Value"] == "m1.tiny"
    statuses = alpha.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
    assert {s["InstanceState"]["Name"] for s in statuses} == {"running"}

    # Stop, start, reboot.
    alpha.stop_instances(InstanceIds=[ids[0]])
    wait(alpha, "instance_stopped", [ids[0]])
    expect_error("IncorrectInstanceState", alpha.reboot_instances, InstanceIds=[ids[0]])
    cli(A, "start-instances", "--instance-ids", ids[0])
    wait(alpha, "instance_running", [ids[0]])
    alpha.reboot_instances(InstanceIds=ids)

    # Tags.
    alpha.create_tags(Resources=[ids[0], sg], Tags=[{"Key": "owner", "Value": "<alice & \"bob\">"}])
    tags = alpha.describe_tags(Filters=[f("key", "owner")])["Tags"]
    assert {(t["ResourceId"], t["Value"]) for t in tags} == {(ids[0], "<alice & \"bob\">"), (sg, "<alice & \"bob\">")}
    alpha.delete_tags(Resources=[ids[0]], Tags=[{"Key": "owner"}])
    assert len(alpha.describe_tags(Filters=[f("key", "owner")])["Tags"]) == 1
    expect_error("InvalidInstanceID.NotFound", beta.create_tags, Resources=[ids[0]], Tags=[{"Key": "x", "Value": "y"}])

    # What the cloud offers.
    zones = alpha.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["nova"], zones
    assert alpha.describe_regions()["Regions"][0]["RegionName"] == REGION
    types = {t["InstanceType"]: t for t in alpha.describe_instance_types()["InstanceTypes"]}
    assert types["m1.tiny"]["MemoryInfo"]["SizeInMiB"] == 512 and types["m1.tiny"]["VCpuInfo"]["DefaultVCpus"] == 1
    medium = types["m1.medium"]
    assert medium["VCpuInfo"] == {"DefaultVCpus": 2, "DefaultCores": 2, "DefaultThreadsPerCore": 1,
                                  "ValidCores": [1, 2], "ValidThreadsPerCore": [1]}, medium["VCpuInfo"]
    assert medium["InstanceStorageSupported"] and medium["InstanceStorageInfo"]["TotalSizeInGB"] == 40
    assert medium["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"], medium["ProcessorInfo"]
    assert [t["InstanceType"] for t in alpha.describe_instance_types(Filters=[
        {"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])["InstanceTypes"]] == ["m1.medium"]
    attrs = {a["AttributeName"] for a in alpha.describe_account_attributes()["AccountAttributes"]}
    assert "max-instances" in attrs

    # Failures: projects, signatures, actions, ids.
    expect_error("InvalidInstanceID.NotFound", beta.describe_instances, InstanceIds=[ids[0]])
    expect_error("InvalidInstanceID.NotFound", beta.terminate_instances, InstanceIds=[ids[0]])
    expect_error("InvalidInstanceID.NotFound", beta.get_console_output, InstanceId=ids[0])
    assert beta.describe_instances()["Reservations"] == []
    expect_error("InvalidInstanceID.NotFound", alpha.describe_instances, InstanceIds=["i-00000000000000000"])
    expect_error("InvalidInstanceID.Malformed", alpha.describe_instances, InstanceIds=["i-zz"])
    expect_error("SignatureDoesNotMatch", client((A[0], "wrong-secret")).describe_instances)
    expect_error("AuthFailure", client(("AKIANOSUCHKEY0000000", "x")).describe_instances)
    status, body = raw("DescribeInstances", {}, when=datetime.datetime.now(datetime.timezone.utc)
                       - datetime.timedelta(minutes=10))
    assert status == 400 and "<Code>RequestExpired</Code>" in body, (status, body)
    status, body = raw("LaunchRocket", {})
    assert status == 400 and "<Code>InvalidAction</Code>" in body, (status, body)
    status, body = raw("DescribeInstances", {}, version=2)
    assert status == 200 and ids[0] in body, (status, body[:300])
    status, body = raw("DescribeInstances", {}, version=2, secret="wrong")
    assert status == 403 and "SignatureDoesNotMatch" in body, (status, body)
    req = urllib.request.Request(ENDPOINT + "?Action=DescribeInstances", method="GET")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("an unsigned request was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and b"AuthFailure" in e.read()
    assert "InvalidInstanceID.NotFound" in cli_error(B, "terminate-instances", "--instance-ids", ids[1])
    expect_error("InvalidGroup.InUse", alpha.delete_security_group, GroupId=sg)
    expect_error("CannotDelete", alpha.delete_security_group, GroupName="default")
    alpha.delete_security_group(GroupId=spare)
    expect_error("DryRunOperation", alpha.terminate_instances, InstanceIds=ids, DryRun=True)

    # STS on the same endpoint: the account, the OwnerId of all the above (sts.py).
    sts_life(ENDPOINT, REGION, A, B, alpha, beta, expect_error, AWS)

    creds = {"A": A, "B": B}
    # The default VPC, its subnets and the instances' interfaces (vpcs.py).
    vpc_life(alpha, beta, ids, expect_error, lambda who, *args: cli(creds[who], *args),
             lambda who, code, *args: cli_code(creds[who], code, *args))
    # Instance attributes (attributes.py).
    attribute_life(alpha, beta, ids[0], expect_error,
                   lambda who, *args: cli(creds[who], *args),
                   lambda who, code, *args: cli_code(creds[who], code, *args), wait)
    # Public addresses: launch addresses and Elastic IPs (addresses.py).
    address_life(alpha, beta, ids + more_ids, IMAGE_PATH, expect_error,
                 lambda who, *args: cli(creds[who], *args),
                 lambda who, code, *args: cli_code(creds[who], code, *args), wait)

    # Terminate everything; the group can go once its instances are gone.
    gone = alpha.terminate_instances(InstanceIds=ids + more_ids)["TerminatingInstances"]
    assert {g["PreviousState"]["Name"] for g in gone} == {"running"}
    wait(alpha, "instance_terminated", ids + more_ids)

    # Launch options and rule ids (launch_options.py), once the quota is free.
    launch_options_life(alpha, beta, ami, sg, expect_error,
                        lambda who, *args: cli(creds[who], *args),
                        lambda who, code, *args: cli_code(creds[who], code, *args), wait)
    alpha.revoke_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": sg}]}])
    expect_error("InvalidPermission.NotFound", alpha.revoke_security_group_ingress, GroupId=sg,
                 IpPermissions=[{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    alpha.delete_security_group(GroupId=sg)
    alpha.delete_key_pair(KeyName="life-key")
    alpha.deregister_image(ImageId=ami)
    print(f"life ok: {_saved[0]} responses saved")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure with its trace
        import traceback
        traceback.print_exc()
        sys.exit(1)
