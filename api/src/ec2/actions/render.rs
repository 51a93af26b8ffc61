//! How instances and reservations look in responses (RunInstances and
//! DescribeInstances share it).

use std::collections::HashMap;

use stratus_rpc::wire::conductor::InstanceState;

use crate::db::instances::InstanceRow;

use super::super::xml::Xml;

/// `<instanceState>` (or another element of the same shape).
pub fn instance_state(x: &mut Xml, element: &str, state: InstanceState) {
    x.open(element)
        .value("code", state.code())
        .text("name", state.ec2_name())
        .close(element);
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
                i.state_reason.as_deref().unwrap_or("the launch failed")
            ),
        )),
        InstanceState::Terminated
        | InstanceState::ShuttingDown
        | InstanceState::Stopped
        | InstanceState::Stopping => Some((
            USER_SHUTDOWN,
            format!("{USER_SHUTDOWN}: User initiated shutdown"),
        )),
        InstanceState::Pending => i
            .state_reason
            .as_ref()
            .map(|r| (i.state.ec2_name(), format!("{}: {r}", i.state))),
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
        InstanceState::Error => i.state_reason.clone().unwrap_or_default(),
        InstanceState::Pending | InstanceState::Running => String::new(),
    }
}

/// One `instancesSet` item.
pub fn instance(x: &mut Xml, i: &InstanceRow, tags: &[(String, String)], default_zone: &str) {
    x.text("instanceId", &i.ec2_id).text("imageId", &i.image_id);
    instance_state(x, "instanceState", i.state);
    let ip = i.fixed_ip.as_deref().unwrap_or("");
    x.text("privateDnsName", ip)
        .text("dnsName", "")
        .text("reason", &transition_reason(i))
        .opt("keyName", i.key_name.as_deref())
        .value("amiLaunchIndex", i.launch_index)
        .open("productCodes")
        .close("productCodes")
        .text("instanceType", &i.instance_type)
        .text("launchTime", &i.launched_at);
    let zone = i
        .availability_zone
        .as_deref()
        .or(i
            .requested_zone
            .as_deref()
            .map(|z| z.split(':').next().unwrap_or(z)))
        .filter(|z| !z.is_empty())
        .unwrap_or(default_zone);
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
    x.text("hypervisor", "xen")
        .open("networkInterfaceSet")
        .close("networkInterfaceSet")
        .value("ebsOptimized", false)
        .open("cpuOptions")
        .value("coreCount", i.vcpus)
        .value("threadsPerCore", 1)
        .close("cpuOptions");
}

/// One reservation: its id, owner, groups and instances.
pub fn reservation(
    x: &mut Xml,
    reservation_id: &str,
    owner: &str,
    instances: &[(&InstanceRow, Vec<(String, String)>)],
    default_zone: &str,
) {
    x.text("reservationId", reservation_id)
        .text("ownerId", owner);
    let groups = instances
        .first()
        .map(|(i, _)| i.groups.clone())
        .unwrap_or_default();
    x.list("groupSet", &groups, |x, (id, name)| {
        x.text("groupId", id).text("groupName", name);
    });
    x.list("instancesSet", instances, |x, (i, tags)| {
        instance(x, i, tags, default_zone);
    });
}

/// `reservationSet`: `rows` grouped by reservation, in the order each
/// reservation's first instance comes, with their tags by instance id.
pub fn reservations(
    x: &mut Xml,
    rows: &[InstanceRow],
    tags: &HashMap<String, Vec<(String, String)>>,
    owner: &str,
    default_zone: &str,
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
        reservation(x, r, owner, instances, default_zone);
    });
}
