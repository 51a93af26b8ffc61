"""Walks every EC2 action that takes an id with another project's ids: each
must answer as if the resource did not exist (never "forbidden", which would
leak that it does), and nothing of the owner's may change.

Environment: STRATUS_ENDPOINT, ALPHA_KEY/SECRET (the owner), BETA_KEY/SECRET
(the other project), IMAGE_PATH. Prints "isolation ok" when every step held.
"""

import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["STRATUS_ENDPOINT"]


def client(key, secret):
    return boto3.client("ec2", endpoint_url=ENDPOINT, region_name="nova",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def refused(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{fn.__name__}({kwargs}): expected {code}, got {got}"
        return
    raise AssertionError(f"{fn.__name__}({kwargs}) succeeded for another project")


def main():
    alpha = client(os.environ["ALPHA_KEY"], os.environ["ALPHA_SECRET"])
    beta = client(os.environ["BETA_KEY"], os.environ["BETA_SECRET"])

    # The owner's things: a key, a group with a rule, an image, a tagged instance.
    alpha.create_key_pair(KeyName="mine")
    key_id = alpha.describe_key_pairs()["KeyPairs"][0]["KeyPairId"]
    sg = alpha.create_security_group(GroupName="mine", Description="owner's")["GroupId"]
    alpha.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    ami = alpha.register_image(Name="mine", ImageLocation=os.environ["IMAGE_PATH"])["ImageId"]
    iid = alpha.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.tiny", KeyName="mine",
                              SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    alpha.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    alpha.create_tags(Resources=[iid, sg, ami], Tags=[{"Key": "owner", "Value": "alpha"}])

    nf_i, nf_g, nf_a, nf_k = ("InvalidInstanceID.NotFound", "InvalidGroup.NotFound",
                              "InvalidAMIID.NotFound", "InvalidKeyPair.NotFound")
    # Instances.
    refused(nf_i, beta.describe_instances, InstanceIds=[iid])
    refused(nf_i, beta.describe_instance_status, InstanceIds=[iid])
    refused(nf_i, beta.describe_instance_attribute, InstanceId=iid, Attribute="userData")
    refused(nf_i, beta.get_console_output, InstanceId=iid)
    refused(nf_i, beta.reboot_instances, InstanceIds=[iid])
    refused(nf_i, beta.stop_instances, InstanceIds=[iid])
    refused(nf_i, beta.start_instances, InstanceIds=[iid])
    refused(nf_i, beta.terminate_instances, InstanceIds=[iid])
    assert beta.describe_instances(Filters=[{"Name": "instance-id", "Values": [iid]}])["Reservations"] == []
    # Tags on every kind of resource.
    refused(nf_i, beta.create_tags, Resources=[iid], Tags=[{"Key": "x", "Value": "y"}])
    refused(nf_i, beta.delete_tags, Resources=[iid], Tags=[{"Key": "owner"}])
    refused(nf_g, beta.create_tags, Resources=[sg], Tags=[{"Key": "x", "Value": "y"}])
    refused(nf_a, beta.create_tags, Resources=[ami], Tags=[{"Key": "x", "Value": "y"}])
    assert beta.describe_tags()["Tags"] == [], "beta sees alpha's tags"
    # Key pairs: invisible; deleting one "succeeds" as EC2 does, and changes nothing.
    refused(nf_k, beta.describe_key_pairs, KeyNames=["mine"])
    refused(nf_k, beta.describe_key_pairs, KeyPairIds=[key_id])
    beta.delete_key_pair(KeyName="mine")
    beta.delete_key_pair(KeyPairId=key_id)
    theirs = beta.register_image(Name="theirs", ImageLocation=os.environ["IMAGE_PATH"])["ImageId"]
    refused(nf_k, beta.run_instances, ImageId=theirs, MinCount=1, MaxCount=1, KeyName="mine")
    refused(nf_g, beta.run_instances, ImageId=theirs, MinCount=1, MaxCount=1, SecurityGroupIds=[sg])
    beta.create_key_pair(KeyName="mine")  # names are per project
    # Security groups.
    refused(nf_g, beta.describe_security_groups, GroupIds=[sg])
    refused(nf_g, beta.delete_security_group, GroupId=sg)
    refused(nf_g, beta.authorize_security_group_ingress, GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    refused(nf_g, beta.revoke_security_group_ingress, GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    beta_default = beta.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    refused(nf_g, beta.authorize_security_group_ingress, GroupId=beta_default, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": sg}]}])
    refused(nf_g, beta.authorize_security_group_egress, GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    refused(nf_g, beta.revoke_security_group_egress, GroupId=sg, IpPermissions=[{
        "IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    refused(nf_g, beta.authorize_security_group_egress, GroupId=beta_default, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": sg}]}])
    # Images (a private one) and launching with the owner's things.
    refused(nf_a, beta.describe_images, ImageIds=[ami])
    refused(nf_a, beta.deregister_image, ImageId=ami)
    refused(nf_a, beta.run_instances, ImageId=ami, MinCount=1, MaxCount=1)
    assert ami not in [i["ImageId"] for i in beta.describe_images()["Images"]]

    # The owner's things are as they were.
    inst = alpha.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["State"]["Name"] == "running", inst["State"]
    assert {t["Key"]: t["Value"] for t in inst["Tags"]} == {"owner": "alpha"}, inst["Tags"]
    assert [k["KeyName"] for k in alpha.describe_key_pairs()["KeyPairs"]] == ["mine"]
    perms = alpha.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in perms] == [(22, "10.0.0.0/8")], perms
    egress = alpha.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissionsEgress"]
    assert [(p["IpProtocol"], p["IpRanges"]) for p in egress] == [("-1", [{"CidrIp": "0.0.0.0/0"}])], egress
    assert [i["ImageId"] for i in alpha.describe_images(ImageIds=[ami])["Images"]] == [ami]
    print("isolation ok")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - report any failure with its trace
        import traceback
        traceback.print_exc()
        sys.exit(1)
