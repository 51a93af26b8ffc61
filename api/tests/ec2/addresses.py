"""Public addresses through boto3 and the AWS CLI: the address every instance
gets at launch (and one launched without), Elastic IPs of both domains
allocated, associated (by allocation id and by public address, moved with
and without AllowReassociation), described by every filter, disassociated
and released, EC2's errors, the project's address quota, and another
project finding none of them.

`address_life(...)` is the walk; life.py runs it in its whole life
(tests/it/ec2_api.rs starts the cloud with a public range and passes it as
PUBLIC_RANGE; every boto3 response is checked against botocore's model by
ec2_check.py). It leaves nothing behind but the instances it was given.
"""

import ipaddress
import os

PUBLIC_RANGE = ipaddress.ip_network(os.environ["PUBLIC_RANGE"])
DNS_DOMAIN = os.environ.get("PUBLIC_DNS_DOMAIN", "compute.stratus")
QUOTA = int(os.environ["ADDRESS_QUOTA"])
UNKNOWN_ALLOCATION = "eipalloc-00000000000000000"
UNKNOWN_ASSOCIATION = "eipassoc-00000000000000000"


def _instance(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _public(ec2, instance_id):
    """The instance's public address, checked to fit its public DNS name."""
    i = _instance(ec2, instance_id)
    ip = i.get("PublicIpAddress")
    if ip is None:
        assert i["PublicDnsName"] == "", i
        return None
    assert ipaddress.ip_address(ip) in PUBLIC_RANGE, ip
    assert ipaddress.ip_address(ip) != next(PUBLIC_RANGE.hosts()), "the outside's router handed out"
    assert i["PublicDnsName"] == f"ec2-{ip.replace('.', '-')}.{DNS_DOMAIN}", i
    return ip


def _addresses(ec2, **kw):
    return sorted(ec2.describe_addresses(**kw)["Addresses"], key=lambda a: a["PublicIp"])


def _ips(ec2, **kw):
    return sorted(a["PublicIp"] for a in ec2.describe_addresses(**kw)["Addresses"])


def address_life(alpha, beta, launched, image_path, expect_error, cli, cli_error, wait):
    """Walks public addresses as alpha (project A) with beta (project B)
    trying alpha's addresses. `launched` are alpha's running instances that
    got a public address at launch (three at least); `cli(creds, args...)`
    runs the AWS CLI as `creds` ("A" or "B"), `cli_error(creds, code,
    args...)` expects it to fail with `code`."""
    f = lambda name, *values: {"Name": name, "Values": list(values)}

    # Every launch got an address of its own, named by its DNS name.
    autos = [_public(alpha, i) for i in launched]
    assert None not in autos and len(set(autos)) == len(autos), autos
    ran = cli("A", "run-instances", "--image-id", _instance(alpha, launched[0])["ImageId"],
              "--count", "1", "--instance-type", "m1.tiny", "--network-interfaces",
              '[{"DeviceIndex":0,"AssociatePublicIpAddress":false}]')
    bare = ran["Instances"][0]["InstanceId"]
    assert "PublicIpAddress" not in ran["Instances"][0], ran
    wait(alpha, "instance_running", [bare])
    assert _public(alpha, bare) is None, "an instance launched without a public address has one"
    # Launch addresses are not Elastic IPs: DescribeAddresses lists none.
    assert alpha.describe_addresses()["Addresses"] == []

    # Allocate: both domains, through the CLI and boto3, up to the quota.
    made = [cli("A", "allocate-address", "--domain", "vpc"),
            cli("A", "allocate-address", "--domain", "standard"),
            alpha.allocate_address(Domain="vpc"),
            alpha.allocate_address(Domain="standard")]
    for m, domain in zip(made, ["vpc", "standard", "vpc", "standard"]):
        assert m["Domain"] == domain and m["AllocationId"].startswith("eipalloc-"), m
        assert ipaddress.ip_address(m["PublicIp"]) in PUBLIC_RANGE, m
        assert m["PublicIp"] not in autos, (m, autos)
    while len(made) < QUOTA:
        made.append(alpha.allocate_address(Domain="vpc"))
    v1, s1, v2, s2 = made[:4]
    extra = made[4:]
    assert len({m["PublicIp"] for m in made}) == QUOTA, made
    cli_error("A", "AddressLimitExceeded", "allocate-address", "--domain", "vpc")
    expect_error("AddressLimitExceeded", alpha.allocate_address, Domain="standard")
    expect_error("InvalidParameterValue", alpha.allocate_address, Domain="classic")
    for m in extra:
        alpha.release_address(AllocationId=m["AllocationId"])
    listed = _addresses(alpha)
    assert [(a["PublicIp"], a["AllocationId"], a["Domain"]) for a in listed] == \
        sorted((m["PublicIp"], m["AllocationId"], m["Domain"]) for m in (v1, s1, v2, s2)), listed
    assert all("InstanceId" not in a and "AssociationId" not in a for a in listed), listed

    # Associate: by allocation id (the CLI) to the bare instance, by public
    # address (boto3) to a launched one, whose launch address goes back.
    a1 = cli("A", "associate-address", "--instance-id", bare,
             "--allocation-id", v1["AllocationId"])["AssociationId"]
    assert a1.startswith("eipassoc-"), a1
    assert _public(alpha, bare) == v1["PublicIp"]
    alpha.associate_address(InstanceId=launched[0], PublicIp=s1["PublicIp"])
    assert _public(alpha, launched[0]) == s1["PublicIp"]
    assert autos[0] not in _ips(alpha), "a launch address became an Elastic IP"
    # Associating again to the same instance answers the same association.
    again = alpha.associate_address(InstanceId=bare, AllocationId=v1["AllocationId"])
    assert again["AssociationId"] == a1, (again, a1)

    # A vpc address associated elsewhere moves only when allowed.
    cli_error("A", "Resource.AlreadyAssociated", "associate-address", "--instance-id", launched[1],
              "--allocation-id", v1["AllocationId"])
    expect_error("Resource.AlreadyAssociated", alpha.associate_address, InstanceId=launched[1],
                 PublicIp=v1["PublicIp"])
    assert _public(alpha, bare) == v1["PublicIp"], "a refused move moved the address"
    moved = cli("A", "associate-address", "--instance-id", launched[1], "--public-ip", v1["PublicIp"],
                "--allow-reassociation")["AssociationId"]
    assert moved != a1, moved
    assert _public(alpha, launched[1]) == v1["PublicIp"]
    assert _public(alpha, bare) is None, "the bare instance kept an address after the move"
    a2 = alpha.associate_address(InstanceId=launched[2], AllocationId=v2["AllocationId"],
                                 AllowReassociation=True)["AssociationId"]
    assert _public(alpha, launched[2]) == v2["PublicIp"]
    # A standard address moves as EC2-Classic moved them, without asking.
    alpha.associate_address(InstanceId=bare, PublicIp=s1["PublicIp"])
    assert _public(alpha, bare) == s1["PublicIp"]
    refilled = _public(alpha, launched[0])
    assert refilled is not None and refilled not in (s1["PublicIp"], v1["PublicIp"]), refilled
    expect_error("InvalidAllocationID.NotFound", alpha.associate_address, InstanceId=bare,
                 AllocationId=UNKNOWN_ALLOCATION)
    expect_error("InvalidAddress.NotFound", alpha.associate_address, InstanceId=bare,
                 PublicIp=str(PUBLIC_RANGE[-2]))
    expect_error("InvalidInstanceID.NotFound", alpha.associate_address,
                 InstanceId="i-00000000000000000", AllocationId=v2["AllocationId"])

    # Describe: every filter, by address and by allocation id.
    listed = {a["PublicIp"]: a for a in _addresses(alpha)}
    assert listed[v1["PublicIp"]]["InstanceId"] == launched[1], listed
    assert listed[v1["PublicIp"]]["AssociationId"] == moved, listed
    assert listed[v1["PublicIp"]]["PrivateIpAddress"] == _instance(alpha, launched[1])["PrivateIpAddress"]
    assert listed[s1["PublicIp"]]["InstanceId"] == bare, listed
    assert "InstanceId" not in listed[s2["PublicIp"]], listed
    assert _ips(alpha, Filters=[f("public-ip", v1["PublicIp"])]) == [v1["PublicIp"]]
    assert _ips(alpha, Filters=[f("allocation-id", v2["AllocationId"])]) == [v2["PublicIp"]]
    assert _ips(alpha, Filters=[f("association-id", a2)]) == [v2["PublicIp"]]
    assert _ips(alpha, Filters=[f("instance-id", launched[1], bare)]) == \
        sorted([v1["PublicIp"], s1["PublicIp"]])
    assert _ips(alpha, Filters=[f("domain", "standard")]) == sorted([s1["PublicIp"], s2["PublicIp"]])
    assert _ips(alpha, Filters=[f("domain", "vpc"), f("instance-id", launched[2])]) == [v2["PublicIp"]]
    assert _ips(alpha, Filters=[f("instance-id", launched[3])]) == []
    assert _ips(alpha, PublicIps=[v1["PublicIp"], s2["PublicIp"]]) == sorted([v1["PublicIp"], s2["PublicIp"]])
    assert _ips(alpha, AllocationIds=[s1["AllocationId"]]) == [s1["PublicIp"]]
    by_cli = cli("A", "describe-addresses", "--public-ips", v2["PublicIp"])["Addresses"]
    assert [(a["PublicIp"], a["AssociationId"]) for a in by_cli] == [(v2["PublicIp"], a2)], by_cli
    by_cli = cli("A", "describe-addresses", "--allocation-ids", v1["AllocationId"], s2["AllocationId"])
    assert sorted(a["PublicIp"] for a in by_cli["Addresses"]) == sorted([v1["PublicIp"], s2["PublicIp"]])
    by_cli = cli("A", "describe-addresses", "--filters", "Name=domain,Values=vpc")["Addresses"]
    assert sorted(a["PublicIp"] for a in by_cli) == sorted([v1["PublicIp"], v2["PublicIp"]]), by_cli
    expect_error("InvalidAddress.NotFound", alpha.describe_addresses, PublicIps=[autos[1]])
    expect_error("InvalidAllocationID.NotFound", alpha.describe_addresses, AllocationIds=[UNKNOWN_ALLOCATION])
    cli_error("A", "InvalidAddress.NotFound", "describe-addresses", "--public-ips", str(PUBLIC_RANGE[-2]))
    cli_error("A", "InvalidAllocationID.NotFound", "describe-addresses", "--allocation-ids",
              UNKNOWN_ALLOCATION)
    expect_error("InvalidParameterValue", alpha.describe_addresses, Filters=[f("colour", "red")])

    # Project B finds none of A's addresses, whatever it tries.
    before = _addresses(alpha)
    beta_ami = beta.register_image(Name="beta-image", ImageLocation=image_path)["ImageId"]
    theirs = beta.run_instances(ImageId=beta_ami, MinCount=1, MaxCount=1,
                                InstanceType="m1.tiny")["Instances"][0]["InstanceId"]
    wait(beta, "instance_running", [theirs])
    assert beta.describe_addresses()["Addresses"] == []
    for a, association in ((v1, moved), (v2, a2), (s1, None), (s2, None)):
        ip, alloc = a["PublicIp"], a["AllocationId"]
        assert beta.describe_addresses(Filters=[f("public-ip", ip)])["Addresses"] == []
        expect_error("InvalidAddress.NotFound", beta.describe_addresses, PublicIps=[ip])
        expect_error("InvalidAllocationID.NotFound", beta.describe_addresses, AllocationIds=[alloc])
        expect_error("InvalidAllocationID.NotFound", beta.associate_address, InstanceId=theirs,
                     AllocationId=alloc, AllowReassociation=True)
        expect_error("InvalidAddress.NotFound", beta.associate_address, InstanceId=theirs,
                     PublicIp=ip, AllowReassociation=True)
        expect_error("InvalidAddress.NotFound", beta.disassociate_address, PublicIp=ip)
        if association:
            expect_error("InvalidAssociationID.NotFound", beta.disassociate_address,
                         AssociationId=association)
        expect_error("InvalidAllocationID.NotFound", beta.release_address, AllocationId=alloc)
        expect_error("InvalidAddress.NotFound", beta.release_address, PublicIp=ip)
    cli_error("B", "InvalidAddress.NotFound", "describe-addresses", "--public-ips", v1["PublicIp"])
    cli_error("B", "InvalidAllocationID.NotFound", "associate-address", "--instance-id", theirs,
              "--allocation-id", v1["AllocationId"], "--allow-reassociation")
    cli_error("B", "InvalidAssociationID.NotFound", "disassociate-address", "--association-id", moved)
    cli_error("B", "InvalidAllocationID.NotFound", "release-address", "--allocation-id", v1["AllocationId"])
    # Nor may A point its address at B's instance.
    expect_error("InvalidInstanceID.NotFound", alpha.associate_address, InstanceId=theirs,
                 AllocationId=v2["AllocationId"], AllowReassociation=True)
    assert _addresses(alpha) == before, "another project's attempts changed alpha's addresses"
    assert _public(beta, theirs) not in [a["PublicIp"] for a in before]
    beta.terminate_instances(InstanceIds=[theirs])
    wait(beta, "instance_terminated", [theirs])
    beta.deregister_image(ImageId=beta_ami)

    # Release: an associated vpc address is refused; disassociated, it goes.
    cli_error("A", "InvalidIPAddress.InUse", "release-address", "--allocation-id", v1["AllocationId"])
    expect_error("InvalidIPAddress.InUse", alpha.release_address, AllocationId=v2["AllocationId"])
    assert _public(alpha, launched[1]) == v1["PublicIp"]
    cli("A", "disassociate-address", "--association-id", moved)
    fresh = _public(alpha, launched[1])
    assert fresh is not None and fresh != v1["PublicIp"], "no fresh launch address after disassociation"
    alpha.disassociate_address(PublicIp=v2["PublicIp"])
    alpha.disassociate_address(PublicIp=s1["PublicIp"])
    assert _public(alpha, bare) is None, "the bare instance got a launch address"
    # Disassociating one not associated is no error, as on EC2.
    alpha.disassociate_address(PublicIp=s2["PublicIp"])
    expect_error("InvalidAssociationID.NotFound", alpha.disassociate_address, AssociationId=moved)
    cli_error("A", "InvalidAssociationID.NotFound", "disassociate-address", "--association-id",
              UNKNOWN_ASSOCIATION)
    expect_error("InvalidAddress.NotFound", alpha.disassociate_address, PublicIp=autos[2])
    assert all("AssociationId" not in a for a in _addresses(alpha))
    cli("A", "release-address", "--allocation-id", v1["AllocationId"])
    alpha.release_address(AllocationId=v2["AllocationId"])
    cli("A", "release-address", "--public-ip", s1["PublicIp"])
    alpha.release_address(PublicIp=s2["PublicIp"])
    expect_error("InvalidAllocationID.NotFound", alpha.release_address, AllocationId=v1["AllocationId"])
    expect_error("InvalidAddress.NotFound", alpha.release_address, PublicIp=s2["PublicIp"])
    cli_error("A", "InvalidAllocationID.NotFound", "release-address", "--allocation-id", v2["AllocationId"])
    cli_error("A", "InvalidAddress.NotFound", "release-address", "--public-ip", s1["PublicIp"])
    assert alpha.describe_addresses()["Addresses"] == []
    alpha.terminate_instances(InstanceIds=[bare])
    wait(alpha, "instance_terminated", [bare])
