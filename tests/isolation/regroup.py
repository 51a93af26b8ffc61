"""Re-grouping a running victim (ModifyInstanceAttribute with GroupId.N),
tried as the attackers would, for tests/isolation/hostile.py.

Project A's owner moves V into a new group G opening V's port 8080 to the
members of Y's group, then back out; project B's owner tries to change V's
groups, to put project A's groups (G, and Y's group G's rule trusts) on its
own X, and to put its own group open to all on V. Each attempt has a control
that must succeed: an owner's change to its own instance takes effect on the
wire, so the refusals cannot pass on a cloud that ignores groupSet."""

import time

from botocore.exceptions import ClientError

SERVICE = "hi-from-victim"
X_PAGE = "hi-from-x"
NOT_FOUND = "InvalidInstanceID.NotFound"
GROUP_NOT_FOUND = "InvalidGroup.NotFound"


def call(method, **params):
    """Calls an EC2 method: (True, its answer) or (False, "Code: message")."""
    try:
        return True, method(**params)
    except ClientError as e:
        error = e.response.get("Error", {})
        return False, f"{error.get('Code')}: {error.get('Message')}"


def refused(result, code):
    """Whether a call failed with the error code `code`."""
    ok, answer = result
    return not ok and answer.split(":")[0] == code


def shown(result):
    """A call's outcome as evidence (the answer's metadata left out)."""
    ok, answer = result
    if ok:
        return {k: v for k, v in answer.items() if k != "ResponseMetadata"} or "accepted"
    return answer


def fetch(guest, address):
    """What guest gets from address:8080 (one try, 4 s)."""
    _, out = guest.ssh(f"timeout 4 wget -q -O - http://{address}:8080/ 2>&1; echo exit=$?",
                       timeout=15)
    return out


def until(guest, address, page, served, within=40):
    """Fetches from guest until whether `page` is served is `served`, or
    time is up; the last answer."""
    deadline = time.time() + within
    while True:
        out = fetch(guest, address)
        if (page in out) == served or time.time() > deadline:
            return out
        time.sleep(1)


def groups_of(client, iid):
    """The instance's group ids as DescribeInstances and
    DescribeInstanceAttribute groupSet show them, each sorted."""
    described = client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    attribute = client.describe_instance_attribute(InstanceId=iid, Attribute="groupSet")
    return (sorted(g["GroupId"] for g in described.get("SecurityGroups", [])),
            sorted(g["GroupId"] for g in attribute.get("Groups", [])))


def port_8080_group(client, name, peer):
    """A group opening tcp 8080 to `peer`: {"GroupId": …} or {"CidrIp": …}."""
    sg = client.create_security_group(GroupName=name, Description=f"isolation {name}")["GroupId"]
    key = "UserIdGroupPairs" if "GroupId" in peer else "IpRanges"
    client.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, key: [peer]}])
    return sg


def attempts(report, clients, guests, groups, health):
    """All the attempts. clients: (project A's, project B's); guests:
    (V, Y, X); groups: the SSH groups (V's, Y's, X's); health: what is
    wrong with V (None when it works)."""
    a, b = clients
    victim, insider, outsider = guests
    sg_v, sg_y, sg_x = groups
    g = port_8080_group(a, "regroup", {"GroupId": sg_y})
    v_both = sorted([sg_v, g])
    moved_in(report, a, guests, (sg_v, g))
    open_b = port_8080_group(b, "open-8080", {"CidrIp": "0.0.0.0/0"})
    control = own_regroup(b, insider, outsider, sg_x, open_b)
    control_ok = control.pop("ok")
    x_view = "X (project B)"

    # B's owner on V: refused as for an id that does not exist.
    made_up = call(b.modify_instance_attribute, InstanceId="i-0123456789abcdef0", Groups=[sg_x])
    tries = {
        "V's groupSet = [X's group]": call(b.modify_instance_attribute, InstanceId=victim.iid,
                                           Groups=[sg_x]),
        "V's groupSet = X's group, as Attribute/Value": call(
            b.modify_instance_attribute, InstanceId=victim.iid, Attribute="groupSet", Value=sg_x),
        "reading V's groupSet": call(b.describe_instance_attribute, InstanceId=victim.iid,
                                     Attribute="groupSet"),
    }
    after = groups_of(a, victim.iid)
    report.check(x_view, "regroup: B's owner changes or reads V's groupSet",
                 not all(refused(t, NOT_FOUND) for t in tries.values())
                 or after != (v_both, v_both),
                 control_ok and refused(made_up, NOT_FOUND),
                 {"attempts": {k: shown(t) for k, t in tries.items()},
                  "V's groups after (DescribeInstances, DescribeInstanceAttribute)": after,
                  "an id that does not exist (control)": shown(made_up),
                  "B's owner regrouping X (control)": control})

    # B's owner puts project A's groups on its own X: G, and Y's group,
    # whose members G's rule lets in to V's 8080.
    tries = {
        "X's groupSet = [X's group, G]": call(b.modify_instance_attribute,
                                              InstanceId=outsider.iid, Groups=[sg_x, g]),
        "X's groupSet = [Y's group]": call(b.modify_instance_attribute,
                                           InstanceId=outsider.iid, Groups=[sg_y]),
        "X's groupSet = [X's group, Y's group]": call(
            b.modify_instance_attribute, InstanceId=outsider.iid, Groups=[sg_x, sg_y]),
    }
    x_groups = groups_of(b, outsider.iid)
    x_in = fetch(outsider, victim.address)
    y_in = fetch(insider, victim.address)
    report.check(x_view, "regroup: B's owner puts project A's groups (G, Y's) on X",
                 not all(refused(t, GROUP_NOT_FOUND) for t in tries.values())
                 or x_groups != ([sg_x], [sg_x]) or SERVICE in x_in,
                 control_ok and SERVICE in y_in,
                 {"attempts": {k: shown(t) for k, t in tries.items()},
                  "X's groups after": x_groups, "X on V's 8080": x_in,
                  "Y on V's 8080 (control: G's rule is live)": y_in,
                  "B's owner regrouping X (control)": control})

    # B's group open to all, on V: by B's owner, and by A's owner too (a
    # group of another project is refused whoever names it).
    tries = {
        "B's owner: V's groupSet = [open-8080]": call(
            b.modify_instance_attribute, InstanceId=victim.iid, Groups=[open_b]),
        "B's owner: V's groupSet = [V's, G, open-8080]": call(
            b.modify_instance_attribute, InstanceId=victim.iid, Groups=[sg_v, g, open_b]),
    }
    by_owner = call(a.modify_instance_attribute, InstanceId=victim.iid, Groups=[sg_v, g, open_b])
    after = groups_of(a, victim.iid)
    x_in = [fetch(outsider, victim.address) for _ in range(2)]
    report.check(x_view, "regroup: B's group opening 8080 to all, applied to V",
                 not all(refused(t, NOT_FOUND) for t in tries.values())
                 or not refused(by_owner, GROUP_NOT_FOUND)
                 or after != (v_both, v_both) or any(SERVICE in o for o in x_in),
                 control_ok,
                 {"attempts": {k: shown(t) for k, t in tries.items()},
                  "A's owner naming it": shown(by_owner), "V's groups after": after,
                  "X on V's 8080": x_in,
                  "B's owner regrouping X with it (control: it opens 8080)": control})

    moved_out(report, a, guests, sg_v, health)
    outsider.ssh("killall httpd", timeout=15)
    call(b.delete_security_group, GroupId=open_b)
    call(a.delete_security_group, GroupId=g)


def moved_in(report, a, guests, groups):
    """A's owner moves running V into G as well: Y (in the group G's rule
    names) reaches 8080, X does not; the API and V's metadata show both."""
    victim, insider, outsider = guests
    sg_v, g = groups
    before = fetch(insider, victim.address)
    moved = call(a.modify_instance_attribute, InstanceId=victim.iid, Groups=[sg_v, g])
    y_in = until(insider, victim.address, SERVICE, True)
    x_in = [fetch(outsider, victim.address) for _ in range(2)]
    listed = groups_of(a, victim.iid)
    _, metadata = victim.ssh("timeout 5 wget -q -O - "
                             "http://169.254.169.254/latest/meta-data/security-groups", timeout=15)
    both = sorted(groups)
    report.check("X (project B)", "regroup: V moved into G (8080 from Y's group) while running",
                 any(SERVICE in o for o in x_in),
                 moved[0] and SERVICE not in before and SERVICE in y_in
                 and listed == (both, both) and {"victim", "regroup"} <= set(metadata.split()),
                 {"X on V's 8080": x_in, "ModifyInstanceAttribute (control)": shown(moved),
                  "Y on V's 8080 before (control: closed)": before,
                  "Y on V's 8080 after (control: open)": y_in,
                  "V's groups (control: DescribeInstances, DescribeInstanceAttribute)": listed,
                  "V's metadata security-groups (control)": metadata})


def own_regroup(b, insider, outsider, sg_x, open_b):
    """B's owner gives its own X the group open to all and takes it away:
    Y reaches a service on X's 8080 only in between. The evidence, with
    "ok" when every step did what it should."""
    _, served = outsider.ssh(f"mkdir -p /tmp/xw && echo {X_PAGE} > /tmp/xw/index.html && "
                             "setsid httpd -p 8080 -h /tmp/xw </dev/null >/dev/null 2>&1; "
                             "timeout 4 wget -q -O - http://127.0.0.1:8080/", timeout=20)
    closed = fetch(insider, outsider.address)
    opened = call(b.modify_instance_attribute, InstanceId=outsider.iid, Groups=[sg_x, open_b])
    y_in = until(insider, outsider.address, X_PAGE, True)
    listed = groups_of(b, outsider.iid)
    back = call(b.modify_instance_attribute, InstanceId=outsider.iid, Groups=[sg_x])
    y_out = until(insider, outsider.address, X_PAGE, False)
    both = sorted([sg_x, open_b])
    ok = (X_PAGE in served and X_PAGE not in closed and opened[0] and X_PAGE in y_in
          and listed == (both, both) and back[0] and X_PAGE not in y_out)
    return {"ok": ok, "X serves itself": served, "Y on X's 8080 before": closed,
            "adding open-8080": shown(opened), "Y on X's 8080 with it": y_in,
            "X's groups with it": listed, "removing it": shown(back),
            "Y on X's 8080 after": y_out}


def moved_out(report, a, guests, sg_v, health):
    """A's owner puts V back in its SSH group alone: Y loses 8080 again,
    V's SSH and service keep working."""
    victim, insider, _ = guests
    before = fetch(insider, victim.address)
    back = call(a.modify_instance_attribute, InstanceId=victim.iid, Groups=[sg_v])
    y_in = until(insider, victim.address, SERVICE, False)
    listed = groups_of(a, victim.iid)
    broken = health(victim)
    report.check("Y (project A)", "regroup: V back in its SSH group alone, Y loses 8080",
                 SERVICE in y_in,
                 SERVICE in before and back[0] and listed == ([sg_v], [sg_v]) and not broken,
                 {"Y on V's 8080 after": y_in,
                  "Y on V's 8080 before (control: open)": before,
                  "ModifyInstanceAttribute (control)": shown(back),
                  "V's groups (control)": listed,
                  "the victim's health (control)": broken or "ssh, own metadata and service fine"})
