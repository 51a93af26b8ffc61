"""Security-group egress rules through boto3 and the AWS CLI: EC2's default
rule (all protocols to 0.0.0.0/0) on every group, authorize, describe,
revoke, EC2's errors, and another project's groups out of reach.

`egress_life(alpha, beta, expect_error)` is the walk; life.py runs it in its
whole life (tests/it/ec2_api.rs, every response checked against botocore's
model by ec2_check.py).
"""

import json

# As botocore parses EC2's default egress rule.
ALLOW_ALL = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
             "PrefixListIds": [], "UserIdGroupPairs": []}
ALL_OUT = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
HTTPS_OUT = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}


def _egress(ec2, group_id):
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissionsEgress"]


def egress_life(alpha, beta, expect_error, cli=None):
    """Walks egress rules as alpha, with beta trying alpha's groups; leaves
    nothing behind. `cli(args...)`, when given, runs the AWS CLI as alpha."""
    web = alpha.create_security_group(GroupName="egress-web", Description="egress")["GroupId"]
    db = alpha.create_security_group(GroupName="egress-db", Description="egress peer")["GroupId"]

    # Every group starts with EC2's default egress rule, `default` included.
    for group in alpha.describe_security_groups()["SecurityGroups"]:
        assert group["IpPermissionsEgress"] == [ALLOW_ALL], group
    assert beta.describe_security_groups()["SecurityGroups"][0]["IpPermissionsEgress"] == [ALLOW_ALL]

    # Authorize: a network and a group as destinations.
    to_db = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": db}]}
    answer = alpha.authorize_security_group_egress(GroupId=web, IpPermissions=[HTTPS_OUT, to_db])
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200, answer
    rules = _egress(alpha, web)
    assert len(rules) == 3 and ALLOW_ALL in rules, rules
    https = [r for r in rules if r.get("FromPort") == 443]
    assert https and https[0]["IpRanges"] == [{"CidrIp": "10.0.0.0/8"}], rules
    pairs = [p for r in rules for p in r["UserIdGroupPairs"]]
    assert [(p["GroupId"], p.get("GroupName")) for p in pairs] == [(db, "egress-db")], rules
    assert alpha.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissions"] == []

    # EC2's errors.
    expect_error("InvalidPermission.Duplicate", alpha.authorize_security_group_egress, GroupId=web,
                 IpPermissions=[HTTPS_OUT])
    expect_error("InvalidParameterValue", alpha.authorize_security_group_egress, GroupId=web,
                 IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                 "IpRanges": [{"CidrIp": "10.0.0.0/8; rm -rf /"}]}])
    expect_error("InvalidGroup.NotFound", alpha.authorize_security_group_egress,
                 GroupId="sg-0123456789abcdef0", IpPermissions=[HTTPS_OUT])
    expect_error("InvalidPermission.NotFound", alpha.revoke_security_group_egress, GroupId=web,
                 IpPermissions=[{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    expect_error("DryRunOperation", alpha.revoke_security_group_egress, GroupId=web,
                 IpPermissions=[ALL_OUT], DryRun=True)

    # Another project: alpha's groups do not exist, as target or destination.
    beta_default = beta.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    expect_error("InvalidGroup.NotFound", beta.authorize_security_group_egress, GroupId=web,
                 IpPermissions=[HTTPS_OUT])
    expect_error("InvalidGroup.NotFound", beta.revoke_security_group_egress, GroupId=web,
                 IpPermissions=[ALL_OUT])
    expect_error("InvalidGroup.NotFound", beta.authorize_security_group_egress, GroupId=beta_default,
                 IpPermissions=[to_db])
    assert len(_egress(alpha, web)) == 3

    # Revoke the default rule (by the CLI when there is one): gone from Describe.
    if cli is not None:
        cli("revoke-security-group-egress", "--group-id", web, "--ip-permissions", json.dumps([ALL_OUT]))
    else:
        alpha.revoke_security_group_egress(GroupId=web, IpPermissions=[ALL_OUT])
    rules = _egress(alpha, web)
    assert ALLOW_ALL not in rules and len(rules) == 2, rules
    expect_error("InvalidPermission.NotFound", alpha.revoke_security_group_egress, GroupId=web,
                 IpPermissions=[ALL_OUT])
    # db, named by web's rule, cannot go while it is.
    expect_error("DependencyViolation", alpha.delete_security_group, GroupId=db)
    alpha.revoke_security_group_egress(GroupId=web, IpPermissions=[HTTPS_OUT, to_db])
    assert _egress(alpha, web) == []
    assert _egress(alpha, db) == [ALLOW_ALL]

    alpha.delete_security_group(GroupId=db)
    alpha.delete_security_group(GroupId=web)
