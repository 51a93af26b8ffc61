"""RunInstances the way current clients launch, through boto3 and the AWS
CLI: into a default subnet (`--subnet-id`), with groups by id
(`--security-group-ids`), with one network interface
(`--network-interfaces`, a PrivateIpAddress in it, its tags from
`--tag-specifications`) and with a fixed private
address (`--private-ip-address`); EC2's refusals; then security-group rules
by their sgr- ids (DescribeSecurityGroupRules, revoke by id, descriptions
set, changed and removed with UpdateSecurityGroupRuleDescriptions*).

`launch_options_life(...)` is the walk; life.py runs it once every earlier
instance is terminated (the project's instance quota is 8). Every boto3
response is checked against botocore's model by ec2_check.py. It leaves
nothing behind: its instances are terminated and its rules revoked.
"""

import hashlib
import ipaddress


def subnet_id(project, zone):
    """The default subnet of `project` in `zone`, derived as api/src/ec2/ids.rs
    derives it (DescribeSubnets lists the same ids)."""
    digest = hashlib.sha256(b"\0".join([b"subnet", project.encode(), zone.encode()])).digest()
    n = int.from_bytes(digest[:16], "big") & ((1 << 68) - 1)
    return f"subnet-{n:017x}"


def _instance(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _groups(ec2, instance_id):
    return sorted(g["GroupId"] for g in _instance(ec2, instance_id)["SecurityGroups"])


def _neighbour(address, taken):
    """A host address beside `address` on its /24 that is not in `taken`."""
    ip = ipaddress.ip_address(address)
    for step in range(1, 40):
        for candidate in (ip + step, ip - step):
            last = int(candidate) & 0xFF
            if 3 <= last <= 254 and str(candidate) not in taken:
                return str(candidate)
    raise AssertionError(f"no free neighbour of {address}")


def launch_options_life(alpha, beta, ami, sg, expect_error, cli, cli_code, wait):
    """Walks the launch options as alpha (project A) with beta (project B)
    trying alpha's subnet and groups. `sg` is a group of alpha's;
    `cli(creds, args...)` runs the AWS CLI as "A" or "B", `cli_code(creds,
    code, args...)` expects it to fail with `code`."""
    zone = alpha.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    subnet = subnet_id("alpha", zone)
    theirs_subnet = subnet_id("beta", zone)
    web = alpha.create_security_group(GroupName="launch-web", Description="launch options")["GroupId"]
    theirs_group = beta.create_security_group(GroupName="launch-web", Description="beta's")["GroupId"]
    launched = []
    one = dict(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.tiny")

    # Refusals first: none of them launches anything.
    expect_error("InvalidSubnetID.NotFound", alpha.run_instances, SubnetId=theirs_subnet, **one)
    expect_error("InvalidSubnetID.NotFound", alpha.run_instances, SubnetId="subnet-00000000000000bad", **one)
    expect_error("InvalidGroup.NotFound", alpha.run_instances, SecurityGroupIds=[theirs_group], **one)
    expect_error("InvalidGroup.NotFound", alpha.run_instances, **one,
                 NetworkInterfaces=[{"DeviceIndex": 0, "Groups": [theirs_group]}])
    expect_error("InvalidParameterCombination", alpha.run_instances, SubnetId=subnet, **one,
                 NetworkInterfaces=[{"DeviceIndex": 0}])
    expect_error("InvalidParameterCombination", alpha.run_instances, SecurityGroupIds=[web], **one,
                 NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet}])
    expect_error("UnsupportedOperation", alpha.run_instances, **one,
                 NetworkInterfaces=[{"DeviceIndex": 0, "DeleteOnTermination": False}])
    expect_error("UnsupportedOperation", alpha.run_instances, **one,
                 NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": "eni-00000000000000001"}])
    expect_error("InvalidParameterValue", alpha.run_instances, PrivateIpAddress="10.0.0.999", **one)
    expect_error("InvalidParameterCombination", alpha.run_instances, ImageId=ami, MinCount=1, MaxCount=2,
                 PrivateIpAddress="10.0.0.10")
    cli_code("A", "InvalidSubnetID.NotFound", "run-instances", "--image-id", ami, "--count", "1",
             "--subnet-id", theirs_subnet)
    assert alpha.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])[
        "Reservations"] == [], "a refused launch left an instance"

    # --subnet-id and --security-group-ids through the CLI.
    ran = cli("A", "run-instances", "--image-id", ami, "--count", "1", "--instance-type", "m1.tiny",
              "--subnet-id", subnet, "--security-group-ids", web, sg)
    first = ran["Instances"][0]["InstanceId"]
    launched.append(first)
    wait(alpha, "instance_running", [first])
    i = _instance(alpha, first)
    assert i["Placement"]["AvailabilityZone"] == zone, i
    assert _groups(alpha, first) == sorted([web, sg]), i
    taken = {i["PrivateIpAddress"]}

    # --private-ip-address: the instance gets exactly that one.
    fixed = _neighbour(i["PrivateIpAddress"], taken)
    ran = cli("A", "run-instances", "--image-id", ami, "--count", "1", "--instance-type", "m1.tiny",
              "--private-ip-address", fixed)
    second = ran["Instances"][0]["InstanceId"]
    launched.append(second)
    wait(alpha, "instance_running", [second])
    assert _instance(alpha, second)["PrivateIpAddress"] == fixed
    taken.add(fixed)

    # --network-interfaces with a subnet, groups and a PrivateIpAddress
    # (as Ansible's ec2_instance sends it).
    wanted = _neighbour(fixed, taken)
    ran = cli("A", "run-instances", "--image-id", ami, "--count", "1", "--instance-type", "m1.tiny",
              "--network-interfaces",
              f'[{{"DeviceIndex":0,"SubnetId":"{subnet}","Groups":["{web}"],'
              f'"PrivateIpAddress":"{wanted}","DeleteOnTermination":true,"Description":"primary"}}]',
              "--tag-specifications", "ResourceType=network-interface,Tags=[{Key=role,Value=launch-web}]")
    third = ran["Instances"][0]["InstanceId"]
    launched.append(third)
    wait(alpha, "instance_running", [third])
    assert _instance(alpha, third)["PrivateIpAddress"] == wanted
    assert _groups(alpha, third) == [web]
    # The interface it made carries the tags asked for it.
    eni = _instance(alpha, third)["NetworkInterfaces"][0]["NetworkInterfaceId"]
    tagged = alpha.describe_network_interfaces(
        Filters=[{"Name": "tag:role", "Values": ["launch-web"]}])["NetworkInterfaces"]
    assert [(n["NetworkInterfaceId"], n["TagSet"]) for n in tagged] == [
        (eni, [{"Key": "role", "Value": "launch-web"}])], tagged
    taken.add(wanted)

    # An address another live instance holds is refused at once, in
    # boto3's list form as at the top level; so is one outside the subnet
    # or one the subnet keeps (its network, gateway and broadcast addresses).
    live = lambda: sorted(i["InstanceId"] for r in alpha.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"])
    before = live()
    clash = expect_error("InvalidIPAddress.InUse", alpha.run_instances, **one, NetworkInterfaces=[{
        "DeviceIndex": 0, "SubnetId": subnet,
        "PrivateIpAddresses": [{"PrivateIpAddress": fixed, "Primary": True}]}])
    assert f"Address {fixed} is in use." in str(clash), clash
    cli_code("A", "InvalidIPAddress.InUse", "run-instances", "--image-id", ami, "--count", "1",
             "--instance-type", "m1.tiny", "--private-ip-address", wanted)
    network = ipaddress.ip_network(alpha.describe_vpcs()["Vpcs"][0]["CidrBlock"])
    outside = network.broadcast_address + 5
    for refused in [outside, network.network_address, network.network_address + 1, network.broadcast_address]:
        expect_error("InvalidParameterValue", alpha.run_instances, **one, PrivateIpAddress=str(refused))
    assert live() == before, "a refused launch left an instance"

    for instance_id in launched:
        alpha.terminate_instances(InstanceIds=[instance_id])
    wait(alpha, "instance_terminated", launched)
    # Deleted with its instance, the interface lets its tags go.
    assert alpha.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"] == []

    # Security-group rules with ids: authorize answers them, describe lists
    # them the same way every time, revoke takes them by id.
    added = alpha.authorize_security_group_ingress(GroupId=web, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "203.0.113.0/24", "Description": "office ssh"}]}])
    assert added["Return"] is True, added
    ssh = added["SecurityGroupRules"][0]
    assert ssh["SecurityGroupRuleId"].startswith("sgr-") and not ssh["IsEgress"], ssh
    assert (ssh["GroupId"], ssh["CidrIpv4"], ssh["Description"]) == (web, "203.0.113.0/24", "office ssh"), ssh
    peers = alpha.authorize_security_group_ingress(GroupId=web, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
        "UserIdGroupPairs": [{"GroupId": web, "Description": "peers"}]}])["SecurityGroupRules"][0]
    assert peers["ReferencedGroupInfo"]["GroupId"] == web, peers
    f = lambda name, *values: {"Name": name, "Values": list(values)}
    listed = alpha.describe_security_group_rules(Filters=[f("group-id", web)])["SecurityGroupRules"]
    again = cli("A", "describe-security-group-rules", "--filters", f"Name=group-id,Values={web}")["SecurityGroupRules"]
    ids = sorted(r["SecurityGroupRuleId"] for r in listed)
    assert ids == sorted(r["SecurityGroupRuleId"] for r in again), (listed, again)
    assert len(ids) == 3 and ssh["SecurityGroupRuleId"] in ids, listed
    assert [r["IsEgress"] for r in listed].count(True) == 1, listed
    assert {r["GroupOwnerId"] for r in listed} == {ssh["GroupOwnerId"]}, listed
    by_id = alpha.describe_security_group_rules(SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])
    assert by_id["SecurityGroupRules"] == [ssh], (by_id, ssh)
    described = alpha.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissions"]
    shown = [r.get("Description") for p in described for r in p["IpRanges"] + p["UserIdGroupPairs"]]
    assert sorted(shown) == ["office ssh", "peers"], described
    expect_error("InvalidSecurityGroupRuleId.NotFound", beta.describe_security_group_rules,
                 SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])
    assert web not in str(beta.describe_security_group_rules()["SecurityGroupRules"])
    expect_error("InvalidSecurityGroupRuleId.NotFound", beta.revoke_security_group_ingress,
                 GroupId=theirs_group, SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])
    _description_life(alpha, beta, expect_error, cli, web, theirs_group, ssh, peers)
    alpha.revoke_security_group_ingress(GroupId=web, SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])
    cli("A", "revoke-security-group-ingress", "--group-id", web,
        "--security-group-rule-ids", peers["SecurityGroupRuleId"])
    expect_error("InvalidSecurityGroupRuleId.NotFound", alpha.revoke_security_group_ingress,
                 GroupId=web, SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])
    left = alpha.describe_security_group_rules(Filters=[f("group-id", web)])["SecurityGroupRules"]
    assert [r["IsEgress"] for r in left] == [True], left
    alpha.delete_security_group(GroupId=web)
    beta.delete_security_group(GroupId=theirs_group)


def _description_life(alpha, beta, expect_error, cli, web, theirs_group, ssh, peers):
    """Rule descriptions changed in place: by what a rule admits
    (IpPermissions) and by sgr- id, ingress and egress, through boto3 and
    the CLI; a rule given without one loses it; EC2's errors, beta's
    attempts on alpha's group and rules included."""
    described = lambda rule_id: alpha.describe_security_group_rules(
        SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0].get("Description")
    office = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
              "IpRanges": [{"CidrIp": "203.0.113.0/24", "Description": "vpn ssh"}]}
    done = alpha.update_security_group_rule_descriptions_ingress(GroupId=web, IpPermissions=[office])
    assert done["Return"] is True, done
    assert described(ssh["SecurityGroupRuleId"]) == "vpn ssh"
    cli("A", "update-security-group-rule-descriptions-ingress", "--group-id", web,
        "--security-group-rule-descriptions",
        f"SecurityGroupRuleId={peers['SecurityGroupRuleId']},Description=team peers")
    assert described(peers["SecurityGroupRuleId"]) == "team peers"
    egress = [r for r in alpha.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [web]}])["SecurityGroupRules"] if r["IsEgress"]][0]
    alpha.update_security_group_rule_descriptions_egress(GroupId=web, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": egress["SecurityGroupRuleId"], "Description": "all out"}])
    assert described(egress["SecurityGroupRuleId"]) == "all out"
    alpha.update_security_group_rule_descriptions_egress(GroupId=web, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": egress["SecurityGroupRuleId"]}])
    assert described(egress["SecurityGroupRuleId"]) is None
    shown = alpha.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissions"]
    assert sorted(r.get("Description") for p in shown for r in p["IpRanges"] + p["UserIdGroupPairs"]) == [
        "team peers", "vpn ssh"], shown

    telnet = dict(office, FromPort=23, ToPort=23)
    expect_error("InvalidPermission.NotFound", alpha.update_security_group_rule_descriptions_ingress,
                 GroupId=web, IpPermissions=[telnet])
    expect_error("InvalidPermission.NotFound", alpha.update_security_group_rule_descriptions_egress,
                 GroupId=web, IpPermissions=[office])
    expect_error("InvalidSecurityGroupRuleId.NotFound", alpha.update_security_group_rule_descriptions_egress,
                 GroupId=web, SecurityGroupRuleDescriptions=[
                     {"SecurityGroupRuleId": ssh["SecurityGroupRuleId"], "Description": "x"}])
    expect_error("InvalidGroup.NotFound", alpha.update_security_group_rule_descriptions_ingress,
                 GroupId="sg-00000000000000000", IpPermissions=[office])
    expect_error("InvalidGroup.NotFound", beta.update_security_group_rule_descriptions_ingress,
                 GroupId=web, IpPermissions=[office])
    expect_error("InvalidSecurityGroupRuleId.NotFound", beta.update_security_group_rule_descriptions_ingress,
                 GroupId=theirs_group, SecurityGroupRuleDescriptions=[
                     {"SecurityGroupRuleId": ssh["SecurityGroupRuleId"], "Description": "beta's"}])
    assert described(ssh["SecurityGroupRuleId"]) == "vpn ssh"
