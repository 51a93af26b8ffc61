//! RunInstances: check every input, launch through the application layer,
//! render the reservation.

use base64::Engine;
use stratus_rpc::wire::compute::Flavor;

use super::super::Ctx;
use super::super::error::Ec2Error;
use super::super::params::shown;
use super::{groups, images, interfaces, render, tags};
use crate::app;
use crate::app::instances::Launch;
use crate::db::images::ImageRow;
use crate::db::instances::InstanceRow;
use crate::db::keypairs::KeyPairRow;

/// The counts asked for: at least `min`, at most `max`.
fn counts(cx: &Ctx<'_>) -> Result<(u64, u64), Ec2Error> {
    let min = cx
        .params
        .int("MinCount")?
        .ok_or_else(|| Ec2Error::missing("MinCount"))?;
    let max = cx
        .params
        .int("MaxCount")?
        .ok_or_else(|| Ec2Error::missing("MaxCount"))?;
    if min < 1 || max < 1 {
        return Err(Ec2Error::invalid(
            "MinCount and MaxCount must be at least 1.",
        ));
    }
    if min > max {
        return Err(Ec2Error::invalid(format!(
            "MinCount ({min}) must be at most MaxCount ({max})."
        )));
    }
    Ok((min as u64, max as u64))
}

/// The user data, checked to be base64 within the size limit.
fn user_data(cx: &Ctx<'_>) -> Result<Option<String>, Ec2Error> {
    let Some(data) = cx.params.get("UserData").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| Ec2Error::invalid("Invalid BASE64 encoding of user data."))?;
    let limit = cx.cloud.config.max_user_data_bytes;
    if decoded.len() > limit {
        return Err(Ec2Error::invalid(format!(
            "User data is limited to {limit} bytes (got {}).",
            decoded.len()
        )));
    }
    Ok(Some(data.trim().to_owned()))
}

/// The zone asked for (`zone:host` is for administrators), or the zone
/// of the subnet asked for; the two must agree.
fn zone(
    cx: &Ctx<'_>,
    known: &[String],
    subnet_zone: Option<&String>,
) -> Result<Option<String>, Ec2Error> {
    let Some(z) = cx
        .params
        .get("Placement.AvailabilityZone")
        .map(str::trim)
        .filter(|z| !z.is_empty())
    else {
        return Ok(subnet_zone.cloned());
    };
    let (zone, host) = match z.split_once(':') {
        Some((zone, host)) => (zone, Some(host)),
        None => (z, None),
    };
    if host.is_some() && !cx.caller.is_admin {
        return Err(Ec2Error::invalid(
            "Only administrators may choose a host (availability zone \"zone:host\").",
        ));
    }
    if !zone.is_empty() && !known.iter().any(|k| k == zone) {
        return Err(Ec2Error::invalid(format!(
            "Invalid availability zone: [{}]",
            shown(zone)
        )));
    }
    if let Some(subnet_zone) = subnet_zone
        && !zone.is_empty()
        && zone != subnet_zone.as_str()
    {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            format!(
                "The subnet is in availability zone {subnet_zone}, not in {}.",
                shown(zone)
            ),
        ));
    }
    match (zone.is_empty(), subnet_zone) {
        // `:host` alone, inside the subnet's zone.
        (true, Some(subnet_zone)) => Ok(Some(format!("{subnet_zone}{}", &z[zone.len()..]))),
        _ => Ok(Some(z.to_owned())),
    }
}

/// The kernel or ramdisk: named, else the image's own, checked usable.
async fn boot_image(
    cx: &Ctx<'_>,
    param: &str,
    default: Option<&String>,
    kind: &str,
) -> Result<Option<ImageRow>, Ec2Error> {
    match cx
        .params
        .get(param)
        .filter(|k| !k.is_empty())
        .or(default.map(String::as_str))
    {
        Some(id) => Ok(Some(images::usable(cx, id, kind).await?)),
        None => Ok(None),
    }
}

/// The instance type asked for (or the default) as a flavor.
fn flavor(cx: &Ctx<'_>) -> Result<Flavor, Ec2Error> {
    let config = &cx.cloud.config;
    let type_name = cx
        .params
        .get("InstanceType")
        .filter(|t| !t.is_empty())
        .unwrap_or(&config.default_instance_type);
    let itype = config.instance_type(type_name).ok_or_else(|| {
        Ec2Error::invalid(format!(
            "Invalid value '{}' for InstanceType.",
            shown(type_name)
        ))
    })?;
    Ok(Flavor {
        name: itype.name.clone(),
        vcpus: itype.vcpus,
        memory_mb: itype.memory_mb,
        root_gb: itype.root_gb,
    })
}

/// The key pair named, if any.
async fn key(cx: &Ctx<'_>) -> Result<Option<KeyPairRow>, Ec2Error> {
    let Some(name) = cx.params.get("KeyName").filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let found = cx.cloud.db.key_pair(&cx.caller.project_id, name).await?;
    found.map(Some).ok_or_else(|| {
        Ec2Error::client(
            "InvalidKeyPair.NotFound",
            format!("The key pair '{}' does not exist", shown(name)),
        )
    })
}

/// The client's idempotency token, checked.
fn client_token(cx: &Ctx<'_>) -> Result<Option<String>, Ec2Error> {
    let token = cx.params.get("ClientToken").filter(|t| !t.is_empty());
    if token.is_some_and(|t| t.len() > 64 || !t.chars().all(|c| c.is_ascii_graphic())) {
        return Err(Ec2Error::invalid(
            "ClientToken must be up to 64 printable ASCII characters.",
        ));
    }
    Ok(token.map(str::to_owned))
}

/// The launch a RunInstances request asks for, every input checked.
async fn launch(cx: &Ctx<'_>) -> Result<Launch, Ec2Error> {
    let image_id = cx.params.required("ImageId")?.to_owned();
    let (min, max) = counts(cx)?;
    let flavor = flavor(cx)?;
    let image = images::usable(cx, &image_id, "machine").await?;
    let kernel = boot_image(cx, "KernelId", image.kernel_id.as_ref(), "kernel").await?;
    let ramdisk = boot_image(cx, "RamdiskId", image.ramdisk_id.as_ref(), "ramdisk").await?;
    let key = key(cx).await?;
    let known_zones = super::info::zones(cx).await;
    let network = interfaces::choice(cx, &known_zones)?;
    if network.private_ip.is_some() && max > 1 {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            "A private IP address can be given only when launching one instance (MaxCount 1).",
        ));
    }
    if let Some(address) = network.private_ip {
        interfaces::check_in_subnet(cx, address).await?;
    }
    let groups = groups::resolve(cx, &network.group_ids, &network.group_names).await?;
    let user_data = user_data(cx)?;
    let zone = zone(cx, &known_zones, network.subnet_zone.as_ref())?;
    let tags = tags::specified(cx, "instance")?;
    let interface_tags = tags::specified(cx, "network-interface")?;
    let client_token = client_token(cx)?;
    let public = cx.cloud.config.public.as_ref();
    let public_ip = network
        .public_ip
        .unwrap_or(public.is_some_and(|p| p.on_launch));
    Ok(Launch {
        image,
        kernel,
        ramdisk,
        flavor,
        min,
        max,
        key,
        groups,
        user_data,
        zone,
        tags,
        interface_tags,
        client_token,
        public_ip: public_ip && public.is_some(),
        private_ip: network.private_ip,
        attributes: super::attributes::at_launch(cx)?,
    })
}

/// RunInstances.
pub async fn run_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let launch = launch(cx).await?;
    cx.dry_run()?;
    let launched = app::instances::run(cx.cloud, cx.caller, &cx.rpc_context(), launch).await?;
    let ids: Vec<String> = launched
        .instances
        .iter()
        .map(|r| r.ec2_id.clone())
        .collect();
    let tags = cx.cloud.db.tags(&cx.caller.project_id, Some(&ids)).await?;
    let with_tags: Vec<(&InstanceRow, Vec<(String, String)>)> = launched
        .instances
        .iter()
        .map(|r| (r, tags::of(&tags, &r.ec2_id)))
        .collect();
    let zone = super::instances::default_zone(cx);
    let mut x = cx.response();
    render::reservation(
        &mut x,
        &launched.reservation_id,
        &cx.caller.project_id,
        &with_tags,
        &zone,
        cx.cloud
            .config
            .public
            .as_ref()
            .map(|p| p.dns_domain.as_str()),
    );
    Ok(cx.finish(x))
}
