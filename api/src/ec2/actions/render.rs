//! How instances and reservations look in responses (RunInstances and
//! DescribeInstances share it).

use std::collections::HashMap;

use stratus_rpc::wire::conductor::InstanceState;

use crate::app::instances::NO_ROOM;
use crate::db::instances::InstanceRow;

use super::super::ids::account_id;
use super::super::xml::Xml;

/// `<instanceState>` (or another element of the same shape).
pub fn instance_state(x: &mut Xml, element: &str, state: InstanceState) {
    x.open(element)
        .value("code", state.code())
        .text("name", state.ec2_name())
        .close(element);
}

/// The stored reason as a client may read it: hosts and the scheduler write
/// reasons for operators, naming hosts and routing keys (`compute.<host>`),
/// which stay inside the cloud.
fn client_reason(i: &InstanceRow) -> Option<String> {
    let reason = i.state_reason.as_deref()?;
    let words: Vec<&str> = reason
        .split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '-');
            let host = i.host.as_deref().is_some_and(|h| bare == h);
            if host || bare.starts_with("compute.") {
                "a compute host"
            } else {
                word
            }
        })
        .collect();
    Some(words.join(" "))
}

/// Why an instance is where it is: (`stateReason` code, message), when
/// there is one to tell.
pub fn state_reason(i: &InstanceRow) -> Option<(&'static str, String)> {
    const USER_SHUTDOWN: &str = "Client.UserInitiatedShutdown";
    match i.state {
        InstanceState::Error => Some((
            "Server.InternalError",
            format!(
                "Server.InternalError: {}",
                client_reason(i).as_deref().unwrap_or("the launch failed")
            ),
        )),
        // A start its host had no room for: stopped again, and why.
        InstanceState::Stopped if i.state_reason.as_deref() == Some(NO_ROOM) => {
            Some(("Server.InsufficientInstanceCapacity", NO_ROOM.to_owned()))
        }
        InstanceState::Terminated
        | InstanceState::ShuttingDown
        | InstanceState::Stopped
        | InstanceState::Stopping => Some((
            USER_SHUTDOWN,
            format!("{USER_SHUTDOWN}: User initiated shutdown"),
        )),
        InstanceState::Pending => {
            client_reason(i).map(|r| (i.state.ec2_name(), format!("{}: {r}", i.state)))
        }
        InstanceState::Running => None,
    }
}

/// `stateTransitionReason`: who moved it and when, in EC2's words.
fn transition_reason(i: &InstanceRow) -> String {
    match i.state {
        InstanceState::Stopped
        | InstanceState::Stopping
        | InstanceState::Terminated
        | InstanceState::ShuttingDown => {
            let when = i
                .updated_at
                .get(..19)
                .unwrap_or(&i.updated_at)
                .replace('T', " ");
            format!("User initiated ({when} GMT)")
        }
        InstanceState::Error => client_reason(i).unwrap_or_default(),
        InstanceState::Pending | InstanceState::Running => String::new(),
    }
}

/// The public DNS name of `i`, when it has a public address and the cloud
/// names them.
fn dns_name(i: &InstanceRow, dns_domain: Option<&str>) -> Option<String> {
    let address = i.public_ip.as_deref()?.parse().ok()?;
    Some(stratus_rpc::wire::addresses::public_dns_name(
        address,
        dns_domain?,
    ))
}

/// One `instancesSet` item; `dns_domain` names public addresses.
pub fn instance(
    x: &mut Xml,
    i: &InstanceRow,
    tags: &[(String, String)],
    default_zone: &str,
    dns_domain: Option<&str>,
) {
    x.text("instanceId", &i.ec2_id).text("imageId", &i.image_id);
    instance_state(x, "instanceState", i.state);
    let ip = i.fixed_ip.as_deref().unwrap_or("");
    x.text("privateDnsName", ip)
        .text("dnsName", &dns_name(i, dns_domain).unwrap_or_default())
        .text("reason", &transition_reason(i))
        .opt("keyName", i.key_name.as_deref())
        .value("amiLaunchIndex", i.launch_index)
        .open("productCodes")
        .close("productCodes")
        .text("instanceType", &i.instance_type)
        .text("launchTime", &i.launched_at);
    let zone = instance_zone(i, default_zone);
    x.open("placement")
        .text("availabilityZone", zone)
        .text("groupName", "")
        .text("tenancy", "default")
        .close("placement");
    x.opt("kernelId", i.kernel_id.as_deref())
        .opt("ramdiskId", i.ramdisk_id.as_deref());
    x.open("monitoring")
        .text("state", "disabled")
        .close("monitoring");
    if let Some(ip) = &i.fixed_ip {
        x.text("privateIpAddress", ip);
    }
    x.opt("ipAddress", i.public_ip.as_deref());
    x.list("groupSet", &i.groups, |x, (id, name)| {
        x.text("groupId", id).text("groupName", name);
    });
    if let Some((code, message)) = state_reason(i) {
        x.open("stateReason")
            .text("code", code)
            .text("message", &message)
            .close("stateReason");
    }
    x.text("architecture", "x86_64")
        .text("rootDeviceType", "instance-store")
        .text("rootDeviceName", "/dev/vda")
        .open("blockDeviceMapping")
        .close("blockDeviceMapping")
        .text("virtualizationType", "hvm");
    if !tags.is_empty() {
        x.list("tagSet", tags, |x, (k, v)| {
            x.text("key", k).text("value", v);
        });
    }
    x.text("hypervisor", "xen");
    vpc_fields(x, i, default_zone, dns_domain);
    x.value("ebsOptimized", false)
        .open("cpuOptions")
        .value("coreCount", i.vcpus)
        .value("threadsPerCore", 1)
        .close("cpuOptions");
}

/// The zone `i` is shown in: where it runs, else the zone it asked for,
/// else `default_zone`.
pub fn instance_zone<'a>(i: &'a InstanceRow, default_zone: &'a str) -> &'a str {
    i.availability_zone
        .as_deref()
        .or(i
            .requested_zone
            .as_deref()
            .map(|z| z.split(':').next().unwrap_or(z)))
        .filter(|z| !z.is_empty())
        .unwrap_or(default_zone)
}

/// An instance's place in its project's default VPC: `vpcId`, `subnetId`
/// (the default subnet of its zone), `sourceDestCheck` and its primary
/// interface (none once terminated).
fn vpc_fields(x: &mut Xml, i: &InstanceRow, default_zone: &str, dns_domain: Option<&str>) {
    let zone = instance_zone(i, default_zone);
    x.text("vpcId", &super::super::ids::default_vpc_id(&i.project_id))
        .text(
            "subnetId",
            &super::super::ids::default_subnet_id(&i.project_id, zone),
        )
        .value("sourceDestCheck", i.attributes.source_dest_check);
    let interface = super::network_interfaces::of(i, default_zone, dns_domain);
    x.list("networkInterfaceSet", interface, |x, n| {
        super::network_interfaces::write(x, &n, super::network_interfaces::Shape::InInstance);
    });
}

/// One reservation: its id, owner (the account of `project_id`), groups
/// and instances.
pub fn reservation(
    x: &mut Xml,
    reservation_id: &str,
    project_id: &str,
    instances: &[(&InstanceRow, Vec<(String, String)>)],
    default_zone: &str,
    dns_domain: Option<&str>,
) {
    x.text("reservationId", reservation_id)
        .text("ownerId", &account_id(project_id));
    let groups = instances
        .first()
        .map(|(i, _)| i.groups.clone())
        .unwrap_or_default();
    x.list("groupSet", &groups, |x, (id, name)| {
        x.text("groupId", id).text("groupName", name);
    });
    x.list("instancesSet", instances, |x, (i, tags)| {
        instance(x, i, tags, default_zone, dns_domain);
    });
}

/// `reservationSet`: `rows` grouped by reservation, in the order each
/// reservation's first instance comes, with their tags by instance id.
pub fn reservations(
    x: &mut Xml,
    rows: &[InstanceRow],
    tags: &HashMap<String, Vec<(String, String)>>,
    project_id: &str,
    default_zone: &str,
    dns_domain: Option<&str>,
) {
    type Tagged<'a> = (&'a InstanceRow, Vec<(String, String)>);
    let mut order: Vec<&str> = Vec::new();
    let mut by_reservation: HashMap<&str, Vec<Tagged<'_>>> = HashMap::new();
    for i in rows {
        let entry = by_reservation.entry(&i.reservation_id).or_insert_with(|| {
            order.push(&i.reservation_id);
            Vec::new()
        });
        entry.push((i, tags.get(&i.ec2_id).cloned().unwrap_or_default()));
    }
    x.list("reservationSet", order, |x, r| {
        let instances = by_reservation.get(r).map(Vec::as_slice).unwrap_or_default();
        reservation(x, r, project_id, instances, default_zone, dns_domain);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_shown_to_clients_name_no_host_or_routing_key() {
        let i = InstanceRow {
            state: InstanceState::Error,
            host: Some("node7".into()),
            state_reason: Some(
                "node7: spawn failed; handing it back failed: call run_instance to compute.node7 timed out"
                    .into(),
            ),
            ..InstanceRow::default()
        };
        let (_, message) = state_reason(&i).expect("a reason");
        for shown in [message, transition_reason(&i)] {
            assert!(!shown.contains("compute."), "{shown}");
            assert!(!shown.contains("node7"), "{shown}");
            assert!(shown.contains("spawn failed"), "{shown}");
        }
    }
}
