"""STS on the EC2 endpoint through boto3 and the AWS CLI: GetCallerIdentity
in the Query protocol (botocore's `sts` client pointed at the endpoint, in
the cloud's region and in another), in the JSON protocol newer SDKs speak,
and STS's refusals; the account it answers is the `OwnerId` of everything
the project owns in EC2, and another project is another account.

`sts_life(...)` is the walk; life.py runs it while the project has
instances, groups and an image. STS responses are not saved for
ec2_check.py (they are not EC2's); botocore's own parser reading every
member back is their check.
"""

import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config

TARGET = "AWSSecurityTokenServiceV20110615.GetCallerIdentity"


def _sts(endpoint, region, creds):
    return boto3.client("sts", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                        config=Config(retries={"max_attempts": 1}))


def _cli(aws, endpoint, region, creds):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=creds[0], AWS_SECRET_ACCESS_KEY=creds[1],
               AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    done = subprocess.run([aws, "--endpoint-url", endpoint, "--output", "json", "sts",
                           "get-caller-identity"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"aws sts get-caller-identity failed: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def _json_protocol(endpoint, region, creds, target=TARGET):
    """GetCallerIdentity as a JSON-protocol SDK sends it; (status, headers
    (read case-insensitively), parsed body)."""
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint, data=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    credentials = botocore.credentials.Credentials(*creds)
    botocore.auth.SigV4Auth(credentials, "sts", region).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                 headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def _check_identity(me, user):
    assert re.fullmatch(r"\d{12}", me["Account"]), me
    assert me["Arn"] == f"arn:aws:iam::{me['Account']}:user/{user}", me
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", me["UserId"]), me
    assert me["ResponseMetadata"]["RequestId"], me


def sts_life(endpoint, region, a, b, alpha, beta, expect_error, aws):
    """`a`, `b`: (key, secret) of projects alpha (user alice) and beta (bob);
    `alpha`, `beta`: their EC2 clients; `aws`: the AWS CLI."""
    me = _sts(endpoint, region, a).get_caller_identity()
    _check_identity(me, "alice")
    account = me["Account"]
    identity = {k: me[k] for k in ("Account", "Arn", "UserId")}
    # Any region signs for STS; the same key is always the same identity.
    elsewhere = _sts(endpoint, "us-east-1", a).get_caller_identity()
    assert {k: elsewhere[k] for k in identity} == identity, elsewhere
    assert _cli(aws, endpoint, region, a) == identity
    status, headers, body = _json_protocol(endpoint, region, a)
    assert status == 200 and body == identity, (status, body)
    assert headers.get("Content-Type") == "application/x-amz-json-1.0", headers

    # What the project owns in EC2 carries that account.
    reservations = alpha.describe_instances()["Reservations"]
    assert reservations and {r["OwnerId"] for r in reservations} == {account}, reservations
    groups = alpha.describe_security_groups()["SecurityGroups"]
    assert {g["OwnerId"] for g in groups} == {account}, groups
    peers = [p for g in groups for r in g["IpPermissions"] for p in r["UserIdGroupPairs"]]
    assert peers and {p["UserId"] for p in peers} == {account}, peers
    images = alpha.describe_images(Owners=[account])["Images"]
    assert images and {i["OwnerId"] for i in images} == {account}, images
    f = {"Name": "owner-id", "Values": [account]}
    assert alpha.describe_instances(Filters=[f])["Reservations"], "owner-id filter found nothing"

    # Another project is another account, and finds nothing under this one.
    theirs = _sts(endpoint, region, b).get_caller_identity()
    _check_identity(theirs, "bob")
    assert theirs["Account"] != account, theirs
    assert _cli(aws, endpoint, region, b)["Account"] == theirs["Account"]
    assert beta.describe_images(Owners=[account])["Images"] == []
    assert beta.describe_instances(Filters=[f])["Reservations"] == []

    # STS's refusals.
    expect_error("SignatureDoesNotMatch", _sts(endpoint, region, (a[0], "wrong")).get_caller_identity)
    expect_error("InvalidClientTokenId",
                 _sts(endpoint, region, ("AKIANOSUCHKEY0000000", "x")).get_caller_identity)
    status, headers, body = _json_protocol(endpoint, region, (a[0], "wrong"))
    assert status == 403 and headers.get("x-amzn-query-error") == "SignatureDoesNotMatch;Sender", \
        (status, headers, body)
    status, _, body = _json_protocol(endpoint, region, a, "AWSSecurityTokenServiceV20110615.AssumeRole")
    assert status == 400 and body["__type"].endswith("#UnknownOperationException"), (status, body)
    return account
