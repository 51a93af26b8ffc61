"""The default VPC through boto3 and the AWS CLI: the project's one VPC
(its network's CIDR), its default subnet per zone, the account attributes
naming it, DescribeVpcAttribute, the running instances' VPC, subnet and
primary network interface, DescribeNetworkInterfaces by id and filter,
security groups in the VPC, refused VPC changes, tags on the VPC, a subnet,
an interface, a security-group rule and an Elastic IP (shown and filtered
by each Describe), and another project seeing (or tagging) none of it.

`vpc_life(...)` is the walk; life.py runs it while its instances run (every
boto3 response is checked against botocore's model by ec2_check.py). It
leaves nothing changed: its tags are deleted and its address released.
"""

import ipaddress

UNKNOWN_VPC = "vpc-00000000000000000"


def _only(items):
    assert len(items) == 1, items
    return items[0]


def vpc_life(alpha, beta, running, expect_error, cli, cli_code):
    """Walks the default VPC as alpha (project A) with beta (project B)
    looking for alpha's. `running` are alpha's running instances (two at
    least); `cli(creds, args...)` runs the AWS CLI as "A" or "B",
    `cli_code(creds, code, args...)` expects it to fail with `code`."""
    f = lambda name, *values: {"Name": name, "Values": list(values)}

    vpc = _only(alpha.describe_vpcs()["Vpcs"])
    vpc_id, cidr = vpc["VpcId"], vpc["CidrBlock"]
    network = ipaddress.ip_network(cidr)
    assert vpc["IsDefault"] is True and vpc["State"] == "available", vpc
    assert vpc["InstanceTenancy"] == "default", vpc
    assert len(vpc["OwnerId"]) == 12 and vpc["OwnerId"].isdigit(), vpc
    assert [a["CidrBlock"] for a in vpc["CidrBlockAssociationSet"]] == [cidr], vpc
    assert _only(alpha.describe_vpcs(VpcIds=[vpc_id])["Vpcs"])["VpcId"] == vpc_id
    assert alpha.describe_vpcs(Filters=[f("is-default", "true")])["Vpcs"][0]["VpcId"] == vpc_id
    assert alpha.describe_vpcs(Filters=[f("is-default", "false")])["Vpcs"] == []
    # As amazon.aws's ec2_instance looks for it.
    assert alpha.describe_vpcs(Filters=[f("isDefault", "true")])["Vpcs"][0]["VpcId"] == vpc_id
    assert alpha.describe_vpcs(Filters=[f("cidr", cidr)])["Vpcs"][0]["VpcId"] == vpc_id
    expect_error("InvalidVpcID.NotFound", alpha.describe_vpcs, VpcIds=[UNKNOWN_VPC])
    by_cli = cli("A", "describe-vpcs", "--filters", "Name=vpc-id,Values=" + vpc_id)
    assert [v["VpcId"] for v in by_cli["Vpcs"]] == [vpc_id], by_cli

    for attribute, key in [("enableDnsSupport", "EnableDnsSupport"),
                           ("enableDnsHostnames", "EnableDnsHostnames")]:
        got = alpha.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        assert got["VpcId"] == vpc_id and got[key] == {"Value": True}, got
    got = cli("A", "describe-vpc-attribute", "--vpc-id", vpc_id, "--attribute", "enableDnsSupport")
    assert got["EnableDnsSupport"] == {"Value": True}, got

    subnets = alpha.describe_subnets()["Subnets"]
    assert subnets, "no default subnet"
    zones = {z["ZoneName"] for z in alpha.describe_availability_zones()["AvailabilityZones"]}
    assert {s["AvailabilityZone"] for s in subnets} == zones, (subnets, zones)
    for s in subnets:
        assert s["VpcId"] == vpc_id and s["CidrBlock"] == cidr, s
        assert s["DefaultForAz"] is True and s["State"] == "available", s
        assert isinstance(s["MapPublicIpOnLaunch"], bool), s
        assert 0 < s["AvailableIpAddressCount"] < network.num_addresses, s
        assert s["SubnetArn"].endswith(":subnet/" + s["SubnetId"]), s
    subnet_ids = {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}
    first = subnets[0]
    assert _only(alpha.describe_subnets(
        Filters=[f("vpc-id", vpc_id), f("availability-zone", first["AvailabilityZone"]),
                 f("default-for-az", "true")])["Subnets"])["SubnetId"] == first["SubnetId"]
    assert alpha.describe_subnets(SubnetIds=[first["SubnetId"]])["Subnets"][0] == first
    by_cli = cli("A", "describe-subnets", "--filters", "Name=vpc-id,Values=" + vpc_id)
    assert {s["SubnetId"] for s in by_cli["Subnets"]} == set(subnet_ids.values()), by_cli

    attributes = alpha.describe_account_attributes(
        AttributeNames=["default-vpc", "supported-platforms"])["AccountAttributes"]
    values = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
              for a in attributes}
    assert values == {"default-vpc": [vpc_id], "supported-platforms": ["VPC"]}, values

    # Instances sit in the VPC, on their zone's default subnet, with one
    # primary interface.
    reservations = alpha.describe_instances(InstanceIds=running)["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    enis = {}
    for i in instances:
        assert i["VpcId"] == vpc_id, i
        assert i["SubnetId"] == subnet_ids[i["Placement"]["AvailabilityZone"]], i
        assert i["SourceDestCheck"] is True, i
        eni = _only(i["NetworkInterfaces"])
        assert eni["Attachment"]["DeviceIndex"] == 0 and eni["Attachment"]["DeleteOnTermination"], eni
        assert eni["PrivateIpAddress"] == i["PrivateIpAddress"], (eni, i)
        assert ipaddress.ip_address(i["PrivateIpAddress"]) in network, (i, cidr)
        assert eni["VpcId"] == vpc_id and eni["SubnetId"] == i["SubnetId"], eni
        assert [g["GroupId"] for g in eni["Groups"]] == [g["GroupId"] for g in i["SecurityGroups"]]
        if i.get("PublicIpAddress"):
            assert eni["Association"]["PublicIp"] == i["PublicIpAddress"], eni
        enis[eni["NetworkInterfaceId"]] = (i, eni)
    found = alpha.describe_instances(Filters=[f("vpc-id", vpc_id), f("instance-id", *running)])
    assert sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]) == sorted(running)

    listed = alpha.describe_network_interfaces()["NetworkInterfaces"]
    assert set(enis) <= {n["NetworkInterfaceId"] for n in listed}, (enis, listed)
    eni_id, (instance, eni) = next(iter(enis.items()))
    one = _only(alpha.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"])
    assert one["Attachment"]["InstanceId"] == instance["InstanceId"], one
    assert one["MacAddress"] == eni["MacAddress"] and one["Status"] == "in-use", one
    assert one["PrivateIpAddresses"][0]["Primary"] is True, one
    for filters in [[f("attachment.instance-id", instance["InstanceId"])],
                    [f("private-ip-address", instance["PrivateIpAddress"])],
                    [f("mac-address", eni["MacAddress"]), f("vpc-id", vpc_id)]]:
        got = alpha.describe_network_interfaces(Filters=filters)["NetworkInterfaces"]
        assert [n["NetworkInterfaceId"] for n in got] == [eni_id], (filters, got)
    by_cli = cli("A", "describe-network-interfaces", "--network-interface-ids", eni_id)
    assert by_cli["NetworkInterfaces"][0]["NetworkInterfaceId"] == eni_id, by_cli

    # Groups belong to the VPC; no other VPC can be named.
    groups = alpha.describe_security_groups(Filters=[f("vpc-id", vpc_id)])["SecurityGroups"]
    assert groups and all(g["VpcId"] == vpc_id for g in groups), groups
    expect_error("InvalidVpcID.NotFound", alpha.create_security_group,
                 GroupName="life-other-vpc", Description="x", VpcId=UNKNOWN_VPC)

    # Making or changing VPCs and subnets is refused with a reason.
    cli_code("A", "UnsupportedOperation", "create-vpc", "--cidr-block", "10.200.0.0/16")
    expect_error("UnsupportedOperation", alpha.create_subnet, VpcId=vpc_id, CidrBlock="10.200.0.0/24")
    expect_error("DefaultVpcAlreadyExists", alpha.create_default_vpc)

    _tag_life(alpha, beta, expect_error, cli, cli_code,
              vpc_id, first["SubnetId"], eni_id)

    # Beta has its own VPC and sees nothing of alpha's.
    beta_vpc = _only(beta.describe_vpcs()["Vpcs"])
    assert beta_vpc["VpcId"] != vpc_id and beta_vpc["CidrBlock"] != cidr, beta_vpc
    expect_error("InvalidVpcID.NotFound", beta.describe_vpcs, VpcIds=[vpc_id])
    assert beta.describe_subnets(Filters=[f("vpc-id", vpc_id)])["Subnets"] == []
    assert beta.describe_network_interfaces()["NetworkInterfaces"] == []
    expect_error("InvalidNetworkInterfaceID.NotFound", beta.describe_network_interfaces,
                 NetworkInterfaceIds=[eni_id])
    assert beta.describe_instances(Filters=[f("vpc-id", vpc_id)])["Reservations"] == []


def _tag_life(alpha, beta, expect_error, cli, cli_code, vpc_id, subnet_id, eni_id):
    """Tags on the VPC, a subnet, an interface, a rule and an Elastic IP:
    DescribeTags names their types, each Describe shows them (`Tags`, or
    `TagSet` for interfaces) and filters by `tag:` and `tag-key`; beta's
    attempts are "not found" with the code of each kind."""
    f = lambda name, *values: {"Name": name, "Values": list(values)}
    rule_id = alpha.describe_security_group_rules()["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    allocation = alpha.allocate_address(Domain="vpc")["AllocationId"]
    kinds = {vpc_id: "vpc", subnet_id: "subnet", eni_id: "network-interface",
             rule_id: "security-group-rule", allocation: "elastic-ip"}
    life = [{"Key": "life", "Value": "vpc"}]
    alpha.create_tags(Resources=list(kinds), Tags=life)
    cli("A", "create-tags", "--resources", subnet_id, "--tags", "Key=tier,Value=web")
    listed = alpha.describe_tags(Filters=[f("key", "life")])["Tags"]
    assert {t["ResourceId"]: t["ResourceType"] for t in listed} == kinds, listed
    by_type = alpha.describe_tags(Filters=[f("resource-type", "security-group-rule")])["Tags"]
    assert [t["ResourceId"] for t in by_type] == [rule_id], by_type

    assert _only(alpha.describe_vpcs(Filters=[f("tag:life", "vpc")])["Vpcs"])["Tags"] == life
    assert alpha.describe_vpcs(Filters=[f("tag:life", "other")])["Vpcs"] == []
    subnet = _only(alpha.describe_subnets(Filters=[f("tag:tier", "web")])["Subnets"])
    assert subnet["SubnetId"] == subnet_id, subnet
    assert sorted(t["Key"] for t in subnet["Tags"]) == ["life", "tier"], subnet
    eni = _only(alpha.describe_network_interfaces(Filters=[f("tag-key", "life")])["NetworkInterfaces"])
    assert eni["NetworkInterfaceId"] == eni_id and eni["TagSet"] == life, eni
    rule = _only(alpha.describe_security_group_rules(Filters=[f("tag:life", "v*")])["SecurityGroupRules"])
    assert rule["SecurityGroupRuleId"] == rule_id and rule["Tags"] == life, rule
    address = _only(alpha.describe_addresses(Filters=[f("tag:life", "vpc")])["Addresses"])
    assert address["AllocationId"] == allocation and address["Tags"] == life, address
    by_cli = cli("A", "describe-network-interfaces", "--filters", "Name=tag:life,Values=vpc")
    assert [n["NetworkInterfaceId"] for n in by_cli["NetworkInterfaces"]] == [eni_id], by_cli

    codes = {"vpc": "InvalidVpcID.NotFound", "subnet": "InvalidSubnetID.NotFound",
             "network-interface": "InvalidNetworkInterfaceID.NotFound",
             "security-group-rule": "InvalidSecurityGroupRuleId.NotFound",
             "elastic-ip": "InvalidAllocationID.NotFound"}
    for resource, kind in kinds.items():
        expect_error(codes[kind], beta.create_tags, Resources=[resource], Tags=[{"Key": "x", "Value": "y"}])
        expect_error(codes[kind], beta.delete_tags, Resources=[resource])
    cli_code("B", "InvalidVpcID.NotFound", "create-tags", "--resources", vpc_id, "--tags", "Key=x,Value=y")
    expect_error("InvalidSubnetID.NotFound", alpha.create_tags,
                 Resources=["subnet-00000000000000000"], Tags=life)
    assert not set(kinds) & {t["ResourceId"] for t in beta.describe_tags()["Tags"]}, "beta sees alpha's tags"

    alpha.delete_tags(Resources=list(kinds))
    alpha.release_address(AllocationId=allocation)
    left = alpha.describe_tags(Filters=[f("resource-id", *kinds)])["Tags"]
    assert left == [], left
