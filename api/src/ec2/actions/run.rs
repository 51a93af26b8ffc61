//! RunInstances: check every input, reserve quota, store the reservation,
//! and cast the instances to the scheduler.

use base64::Engine;
use stratus_rpc::wire::compute::{Flavor, ImageProperties, ImageRef, RunInstance};
use stratus_rpc::wire::conductor::next_sequence;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::{Placement, ScheduleRunInstances};
use tracing::{info, warn};

use super::super::error::Ec2Error;
use super::super::params::shown;
use super::super::{Ctx, ids};
use super::{groups, images, render, tags};
use crate::db::instances::{InstanceRow, NewReservation};

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

/// The zone asked for; `zone:host` is for administrators.
fn zone(cx: &Ctx<'_>, known: &[String]) -> Result<Option<String>, Ec2Error> {
    let Some(z) = cx
        .params
        .get("Placement.AvailabilityZone")
        .map(str::trim)
        .filter(|z| !z.is_empty())
    else {
        return Ok(None);
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
    Ok(Some(z.to_owned()))
}

/// How many of `max` fit the project's quotas; an error when not `min`.
async fn fit_quota(cx: &Ctx<'_>, min: u64, max: u64, flavor: &Flavor) -> Result<u64, Ec2Error> {
    let usage = cx.cloud.db.usage(&cx.caller.project_id).await?;
    let q = &cx.cloud.config.quotas;
    let room = |limit: u64, used: u64, each: u64| {
        limit
            .saturating_sub(used)
            .checked_div(each)
            .unwrap_or(u64::MAX)
    };
    let by_count = room(q.instances, usage.instances, 1);
    let by_vcpus = room(q.vcpus, usage.vcpus, u64::from(flavor.vcpus));
    let by_ram = room(q.memory_mb, usage.memory_mb, flavor.memory_mb);
    let fits = max.min(by_count).min(by_vcpus).min(by_ram);
    if fits >= min {
        return Ok(fits);
    }
    Err(if by_vcpus < min {
        Ec2Error::client(
            "VcpuLimitExceeded",
            format!(
                "You have requested more vCPU capacity than your current vCPU limit of {} allows ({} in use).",
                q.vcpus, usage.vcpus
            ),
        )
    } else if by_ram < min {
        Ec2Error::client(
            "InstanceLimitExceeded",
            format!(
                "You have requested more memory than your current limit of {} MiB allows ({} MiB in use).",
                q.memory_mb, usage.memory_mb
            ),
        )
    } else {
        Ec2Error::client(
            "InstanceLimitExceeded",
            format!(
                "You have requested more instances ({min}) than your current instance limit of {} allows for the specified instance type ({} in use).",
                q.instances, usage.instances
            ),
        )
    })
}

/// RunInstances.
pub async fn run_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let image_id = cx.params.required("ImageId")?.to_owned();
    let (min, max) = counts(cx)?;
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
    let flavor = Flavor {
        name: itype.name.clone(),
        vcpus: itype.vcpus,
        memory_mb: itype.memory_mb,
        root_gb: itype.root_gb,
    };
    let image = images::usable(cx, &image_id, "machine").await?;
    let kernel_id = cx
        .params
        .get("KernelId")
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .or_else(|| image.kernel_id.clone());
    let ramdisk_id = cx
        .params
        .get("RamdiskId")
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .or_else(|| image.ramdisk_id.clone());
    let kernel = match &kernel_id {
        Some(id) => Some(images::usable(cx, id, "kernel").await?),
        None => None,
    };
    let ramdisk = match &ramdisk_id {
        Some(id) => Some(images::usable(cx, id, "ramdisk").await?),
        None => None,
    };
    let key = match cx.params.get("KeyName").filter(|k| !k.is_empty()) {
        Some(name) => Some(
            cx.cloud
                .db
                .key_pair(&cx.caller.project_id, name)
                .await?
                .ok_or_else(|| {
                    Ec2Error::client(
                        "InvalidKeyPair.NotFound",
                        format!("The key pair '{}' does not exist", shown(name)),
                    )
                })?,
        ),
        None => None,
    };
    let chosen_groups = groups::resolve(
        cx,
        &cx.params.list("SecurityGroupId")?,
        &cx.params.list("SecurityGroup")?,
    )
    .await?;
    let user_data = user_data(cx)?;
    let known_zones = super::info::zones(cx).await;
    let zone = zone(cx, &known_zones)?;
    let instance_tags = tags::specified(cx, "instance")?;
    let token = cx
        .params
        .get("ClientToken")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if token
        .as_ref()
        .is_some_and(|t| t.len() > 64 || !t.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err(Ec2Error::invalid(
            "ClientToken must be up to 64 printable ASCII characters.",
        ));
    }
    cx.dry_run()?;

    // Quota check and insert under the project's lock: two requests cannot
    // both take the last slot.
    let lock = cx.cloud.project_lock(&cx.caller.project_id);
    let held = lock.lock().await;
    if let Some(token) = &token
        && let Some(reservation_id) = cx
            .cloud
            .db
            .reservation_by_token(&cx.caller.project_id, token)
            .await?
    {
        drop(held);
        info!(%reservation_id, "client token seen before; answering with its reservation");
        return respond(cx, &reservation_id, None).await;
    }
    let count = fit_quota(cx, min, max, &flavor).await?;
    let reservation_id = ids::new_id("r");
    let now = crate::db::now();
    let group_pairs: Vec<(String, String)> = chosen_groups
        .iter()
        .map(|g| (g.group_id.clone(), g.name.clone()))
        .collect();
    let rows: Vec<InstanceRow> = (0..count)
        .map(|index| {
            let id = InstanceId::new();
            InstanceRow {
                uuid: id.to_string(),
                ec2_id: id.ec2_id(),
                project_id: cx.caller.project_id.clone(),
                user_id: cx.caller.user_id.clone(),
                reservation_id: reservation_id.clone(),
                launch_index: i64::try_from(index).unwrap_or(i64::MAX),
                image_id: image.image_id.clone(),
                kernel_id: kernel_id.clone(),
                ramdisk_id: ramdisk_id.clone(),
                instance_type: flavor.name.clone(),
                vcpus: i64::from(flavor.vcpus),
                memory_mb: i64::try_from(flavor.memory_mb).unwrap_or(i64::MAX),
                root_gb: i64::try_from(flavor.root_gb).unwrap_or(i64::MAX),
                key_name: key.as_ref().map(|k| k.name.clone()),
                key_data: key.as_ref().map(|k| k.public_key.clone()),
                user_data: user_data.clone(),
                requested_zone: zone.clone(),
                state: "pending".into(),
                task_state: Some("scheduling".into()),
                state_sequence: i64::try_from(next_sequence()).unwrap_or(0),
                launched_at: now.clone(),
                updated_at: now.clone(),
                groups: group_pairs.clone(),
                ..InstanceRow::default()
            }
        })
        .collect();
    cx.cloud
        .db
        .insert_reservation(&NewReservation {
            reservation_id: reservation_id.clone(),
            project_id: cx.caller.project_id.clone(),
            client_token: token,
            instances: rows.clone(),
            tags: instance_tags,
        })
        .await?;
    drop(held);

    let mut security_groups = Vec::with_capacity(chosen_groups.len());
    for g in &chosen_groups {
        security_groups.push(crate::app::security_groups::group_update(&cx.cloud.db, g).await?);
    }
    let image_ref = ImageRef {
        id: image.image_id.clone(),
        disk: image.location.clone().into(),
        kernel: kernel.map(|k| k.location.into()),
        ramdisk: ramdisk.map(|r| r.location.into()),
        properties: ImageProperties {
            architecture: Some(image.architecture.clone()),
            hypervisor_type: None,
        },
    };
    let instances: Vec<RunInstance> = rows
        .iter()
        .filter_map(|row| {
            Some(RunInstance {
                instance_id: row.uuid.parse().ok()?,
                project_id: cx.caller.project_id.parse().ok()?,
                flavor: flavor.clone(),
                image: image_ref.clone(),
                security_groups: security_groups.clone(),
                key_data: row.key_data.clone(),
                key_name: row.key_name.clone(),
                user_data: row.user_data.clone(),
                reservation_id: Some(reservation_id.clone()),
                placement: Placement {
                    availability_zone: zone.clone(),
                    ..Placement::default()
                },
            })
        })
        .collect();
    let cast = cx
        .cloud
        .scheduler
        .run_instance(&cx.rpc_context(), &ScheduleRunInstances { instances })
        .await;
    if let Err(e) = cast {
        warn!(%reservation_id, error = %e, "the scheduler could not be reached");
        let reason = format!("the scheduler could not be reached: {e}");
        for row in &rows {
            cx.cloud
                .db
                .update_state(
                    &row.uuid,
                    "error",
                    None,
                    Some(&reason),
                    None,
                    i64::try_from(next_sequence()).unwrap_or(i64::MAX),
                )
                .await?;
        }
        return Err(Ec2Error::unavailable(
            "The instances could not be scheduled now; they are in error. Try again.",
        ));
    }
    info!(%reservation_id, instances = rows.len(), "instances sent to the scheduler");
    respond(cx, &reservation_id, Some(rows)).await
}

/// The RunInstances response for a reservation.
async fn respond(
    cx: &Ctx<'_>,
    reservation_id: &str,
    rows: Option<Vec<InstanceRow>>,
) -> Result<String, Ec2Error> {
    let rows = match rows {
        Some(rows) => rows,
        None => cx
            .cloud
            .db
            .instances(&cx.caller.project_id, None)
            .await?
            .into_iter()
            .filter(|i| i.reservation_id == reservation_id)
            .collect(),
    };
    let ids: Vec<String> = rows.iter().map(|r| r.ec2_id.clone()).collect();
    let tags = cx.cloud.db.tags(&cx.caller.project_id, Some(&ids)).await?;
    let with_tags: Vec<(&InstanceRow, Vec<(String, String)>)> = rows
        .iter()
        .map(|r| (r, tags::of(&tags, &r.ec2_id)))
        .collect();
    let zone = super::instances::default_zone(cx);
    let mut x = cx.response();
    render::reservation(
        &mut x,
        reservation_id,
        &cx.caller.project_id,
        &with_tags,
        &zone,
    );
    Ok(cx.finish(x))
}
