"""Instance attributes through boto3 and the AWS CLI: every attribute
DescribeInstanceAttribute names, ModifyInstanceAttribute in both of its
forms (`Attribute`+`Value` and `<Name>.Value`), the type and user data only
while stopped (a new type reaching the guest at its next start), the groups
replaced and restored, termination protection refusing TerminateInstances, the
source/destination check turned off (kept across a stop and start) and on
again, and another project finding nothing.

`attribute_life(...)` is the walk; life.py runs it on one of alpha's running
instances (every boto3 response is checked against botocore's model by
ec2_check.py). It leaves the instance running, unprotected, with its type,
user data, groups and source/destination check as they were.
"""

import base64

# Attribute name -> the key boto3 answers it under.
ATTRIBUTES = {
    "instanceType": "InstanceType",
    "kernel": "KernelId",
    "ramdisk": "RamdiskId",
    "userData": "UserData",
    "disableApiTermination": "DisableApiTermination",
    "instanceInitiatedShutdownBehavior": "InstanceInitiatedShutdownBehavior",
    "rootDeviceName": "RootDeviceName",
    "blockDeviceMapping": "BlockDeviceMappings",
    "productCodes": "ProductCodes",
    "sourceDestCheck": "SourceDestCheck",
    "groupSet": "Groups",
    "ebsOptimized": "EbsOptimized",
    "sriovNetSupport": "SriovNetSupport",
    "enaSupport": "EnaSupport",
    "disableApiStop": "DisableApiStop",
}


def _value(ec2, instance_id, attribute):
    got = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=attribute)
    assert got["InstanceId"] == instance_id, got
    return got[ATTRIBUTES[attribute]]


def _shows_source_dest_check(ec2, instance_id, checked):
    """DescribeInstances and DescribeNetworkInterfaces both show `checked`."""
    shown = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert shown["SourceDestCheck"] is checked, shown
    assert [n["SourceDestCheck"] for n in shown["NetworkInterfaces"]] == [checked], shown
    nics = [n for n in ec2.describe_network_interfaces()["NetworkInterfaces"]
            if n.get("Attachment", {}).get("InstanceId") == instance_id]
    assert [n["SourceDestCheck"] for n in nics] == [checked], nics


def attribute_life(alpha, beta, instance_id, expect_error, cli, cli_code, wait):
    """Walks the attributes of alpha's running `instance_id`; `cli(creds,
    args...)` runs the AWS CLI as `creds` ("A" or "B"), `cli_code(creds,
    code, args...)` expects it to fail with `code`."""
    i = instance_id
    before = {a: _value(alpha, i, a) for a in ATTRIBUTES}
    assert before["disableApiTermination"] == {"Value": False}, before
    assert before["instanceInitiatedShutdownBehavior"] == {"Value": "stop"}, before
    assert before["sourceDestCheck"] == {"Value": True}, before
    assert before["rootDeviceName"] == {"Value": "/dev/vda"}, before
    assert before["blockDeviceMapping"] == [] and before["productCodes"] == [], before
    assert before["ebsOptimized"] == {"Value": False} and before["disableApiStop"] == {"Value": False}
    assert [g["GroupId"] for g in before["groupSet"]], before
    expect_error("InvalidParameterValue", alpha.describe_instance_attribute, InstanceId=i,
                 Attribute="colour")
    shown = cli("A", "describe-instance-attribute", "--instance-id", i, "--attribute", "sourceDestCheck")
    assert shown["SourceDestCheck"] == {"Value": True}, shown

    # Termination protection, set by the CLI: the whole terminate refused.
    cli("A", "modify-instance-attribute", "--instance-id", i, "--disable-api-termination")
    assert _value(alpha, i, "disableApiTermination") == {"Value": True}
    expect_error("OperationNotPermitted", alpha.terminate_instances, InstanceIds=[i])
    cli_code("A", "OperationNotPermitted", "terminate-instances", "--instance-ids", i)
    assert alpha.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    # The old form: Attribute and Value.
    alpha.modify_instance_attribute(InstanceId=i, Attribute="disableApiTermination", Value="false")
    assert _value(alpha, i, "disableApiTermination") == {"Value": False}

    # Shutdown behaviour, both ways, and back to stop.
    cli("A", "modify-instance-attribute", "--instance-id", i,
        "--instance-initiated-shutdown-behavior", "Value=terminate")
    assert _value(alpha, i, "instanceInitiatedShutdownBehavior") == {"Value": "terminate"}
    expect_error("InvalidParameterValue", alpha.modify_instance_attribute, InstanceId=i,
                 InstanceInitiatedShutdownBehavior={"Value": "explode"})
    alpha.modify_instance_attribute(InstanceId=i, InstanceInitiatedShutdownBehavior={"Value": "stop"})
    assert _value(alpha, i, "instanceInitiatedShutdownBehavior") == {"Value": "stop"}

    # The source/destination check: its own value is no change; off by the
    # CLI, shown on the instance and on its network interface. It stays off
    # across the stop and start below, and goes back on after them.
    alpha.modify_instance_attribute(InstanceId=i, SourceDestCheck={"Value": True})
    cli("A", "modify-instance-attribute", "--instance-id", i, "--no-source-dest-check")
    assert _value(alpha, i, "sourceDestCheck") == {"Value": False}
    _shows_source_dest_check(alpha, i, False)
    expect_error("InvalidParameterValue", alpha.modify_instance_attribute, InstanceId=i,
                 Attribute="sourceDestCheck", Value="maybe")
    cli_code("B", "InvalidInstanceID.NotFound", "modify-instance-attribute", "--instance-id", i,
             "--source-dest-check")

    # Groups: replaced (the CLI), shown, and back (boto3); another
    # project's group is not found.
    groups = [g["GroupId"] for g in before["groupSet"]]
    extra = alpha.create_security_group(GroupName="life-attr", Description="attributes")["GroupId"]
    cli("A", "modify-instance-attribute", "--instance-id", i, "--groups", extra, *groups)
    now = sorted(g["GroupId"] for g in _value(alpha, i, "groupSet"))
    assert now == sorted([extra, *groups]), now
    shown = alpha.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0]
    assert sorted(g["GroupId"] for g in shown["SecurityGroups"]) == now, shown
    theirs = beta.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    expect_error("InvalidGroup.NotFound", alpha.modify_instance_attribute, InstanceId=i, Groups=[theirs])
    alpha.modify_instance_attribute(InstanceId=i, Groups=groups)
    assert [g["GroupId"] for g in _value(alpha, i, "groupSet")] == groups
    alpha.delete_security_group(GroupId=extra)

    # Type and user data: refused while running, taken while stopped.
    expect_error("IncorrectInstanceState", alpha.modify_instance_attribute, InstanceId=i,
                 InstanceType={"Value": "m1.small"})
    expect_error("IncorrectInstanceState", alpha.modify_instance_attribute, InstanceId=i,
                 UserData={"Value": b"new"})
    alpha.stop_instances(InstanceIds=[i])
    wait(alpha, "instance_stopped", [i])
    expect_error("InvalidInstanceAttributeValue", alpha.modify_instance_attribute, InstanceId=i,
                 InstanceType={"Value": "m9.colossal"})
    cli("A", "modify-instance-attribute", "--instance-id", i, "--instance-type", "Value=m1.small")
    assert _value(alpha, i, "instanceType") == {"Value": "m1.small"}
    alpha.modify_instance_attribute(InstanceId=i, UserData={"Value": b"#!/bin/sh\necho new\n"})
    data = _value(alpha, i, "userData")["Value"]
    assert base64.b64decode(data) == b"#!/bin/sh\necho new\n", data
    # Started as m1.small: DescribeInstances says so, and so does the guest's
    # console (the fake hypervisor writes the size each start gives it).
    alpha.start_instances(InstanceIds=[i])
    wait(alpha, "instance_running", [i])
    shown = alpha.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0]
    assert shown["InstanceType"] == "m1.small", shown
    small = alpha.describe_instance_types(InstanceTypes=["m1.small"])["InstanceTypes"][0]
    size = "started with %d vCPUs and %d MiB" % (small["VCpuInfo"]["DefaultVCpus"],
                                                small["MemoryInfo"]["SizeInMiB"])
    console = alpha.get_console_output(InstanceId=i)["Output"]
    assert console.rstrip().splitlines()[-1].endswith(size), console
    # As it was, then running again, at its old size.
    alpha.stop_instances(InstanceIds=[i])
    wait(alpha, "instance_stopped", [i])
    alpha.modify_instance_attribute(InstanceId=i, Attribute="instanceType",
                                    Value=before["instanceType"]["Value"])
    alpha.modify_instance_attribute(InstanceId=i, UserData={
        "Value": base64.b64decode(before["userData"].get("Value", ""))})
    alpha.start_instances(InstanceIds=[i])
    wait(alpha, "instance_running", [i])
    assert _value(alpha, i, "instanceType") == before["instanceType"]
    console = alpha.get_console_output(InstanceId=i)["Output"]
    assert not console.rstrip().splitlines()[-1].endswith(size), console
    assert _value(alpha, i, "sourceDestCheck") == {"Value": False}
    alpha.modify_instance_attribute(InstanceId=i, SourceDestCheck={"Value": True})
    shown = cli("A", "describe-instance-attribute", "--instance-id", i, "--attribute", "sourceDestCheck")
    assert shown["SourceDestCheck"] == {"Value": True}, shown
    _shows_source_dest_check(alpha, i, True)

    # Another project: not found, and nothing changed.
    expect_error("InvalidInstanceID.NotFound", beta.describe_instance_attribute, InstanceId=i,
                 Attribute="userData")
    expect_error("InvalidInstanceID.NotFound", beta.modify_instance_attribute, InstanceId=i,
                 DisableApiTermination={"Value": True})
    cli_code("B", "InvalidInstanceID.NotFound", "modify-instance-attribute", "--instance-id", i,
             "--disable-api-termination")
    assert _value(alpha, i, "disableApiTermination") == {"Value": False}
