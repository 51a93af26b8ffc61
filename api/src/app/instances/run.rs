//! Launching instances: quota under the project's lock, the reservation
//! stored, and the instances cast to the scheduler.

use stratus_rpc::RequestContext;
use stratus_rpc::wire::compute::{Flavor, RunInstance};
use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState};
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use tracing::{info, warn};

use super::{InstanceError, record, request, sequence};
use crate::app::quota;
use crate::db::groups::GroupRow;
use crate::db::images::ImageRow;
use crate::db::instances::{InstanceAttributes, InstanceRow, NewReservation};
use crate::db::keypairs::KeyPairRow;
use crate::db::tags::TagRow;
use crate::ec2::{Caller, Cloud, ids};

/// A launch, checked: what RunInstances asks for.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The machine image.
    pub image: ImageRow,
    /// Its kernel, if it boots one.
    pub kernel: Option<ImageRow>,
    /// Its ramdisk, if it boots one.
    pub ramdisk: Option<ImageRow>,
    /// The instance type.
    pub flavor: Flavor,
    /// At least this many instances…
    pub min: u64,
    /// …and at most this many, as the quotas allow.
    pub max: u64,
    /// The key pair put in the guests.
    pub key: Option<KeyPairRow>,
    /// The security groups.
    pub groups: Vec<GroupRow>,
    /// Base64 user data.
    pub user_data: Option<String>,
    /// The zone (or `zone:host`) asked for.
    pub zone: Option<String>,
    /// Tags on every instance.
    pub tags: Vec<(String, String)>,
    /// Tags on every instance's network interface.
    pub interface_tags: Vec<(String, String)>,
    /// The client's idempotency token.
    pub client_token: Option<String>,
    /// Whether each instance gets a public address at launch.
    pub public_ip: bool,
    /// The fixed IP asked for (a launch of one instance only).
    pub private_ip: Option<std::net::Ipv4Addr>,
    /// Termination protection and shutdown behaviour, as launched.
    pub attributes: InstanceAttributes,
}

/// A reservation launched (or launched before with the same token).
#[derive(Debug, Clone)]
pub struct Launched {
    /// `r-…`.
    pub reservation_id: String,
    /// Its instances.
    pub instances: Vec<InstanceRow>,
}

/// Launches as many instances as the quotas allow (at least `min`) and sends
/// them to the scheduler; a token seen before answers with its reservation.
pub async fn run(
    cloud: &Cloud,
    caller: &Caller,
    ctx: &RequestContext,
    launch: Launch,
) -> Result<Launched, InstanceError> {
    let project = &caller.project_id;
    // Quota check and insert under the project's lock, which holds across
    // api replicas: two requests cannot both take the last slot, nor both
    // store a reservation for one token.
    let held = cloud.lock_project(project).await?;
    if let Some(token) = &launch.client_token
        && let Some(reservation_id) = cloud.db.reservation_by_token(project, token).await?
    {
        held.release().await?;
        info!(%reservation_id, "client token seen before; answering with its reservation");
        return launched(cloud, project, reservation_id).await;
    }
    // Another live instance's address would only fail the build: refuse it
    // now (under the lock, so two launches cannot both ask for it).
    if let Some(address) = launch.private_ip
        && let Some(holder) = cloud.db.private_ip_holder(project, address).await?
    {
        return Err(InstanceError::AddressInUse { address, holder });
    }
    let usage = cloud.db.usage(project).await?;
    let count = quota::fit(
        &cloud.config.quotas,
        usage,
        &launch.flavor,
        launch.min,
        launch.max,
    )
    .map_err(InstanceError::Quota)?;
    let reservation_id = ids::new_id("r");
    let mut rows = rows(caller, &reservation_id, &launch, count);
    // Before the instances: one stored without its address would be sent
    // again after a restart asking for any.
    if let Some(address) = launch.private_ip {
        for row in &rows {
            cloud.db.set_requested_ip(&row.uuid, address).await?;
        }
    }
    let stored = cloud
        .db
        .insert_reservation(&NewReservation {
            reservation_id: reservation_id.clone(),
            project_id: project.clone(),
            client_token: launch.client_token.clone(),
            instances: rows.clone(),
            tags: launch.tags.clone(),
        })
        .await;
    // The unique token index refused it: another process stored the token
    // first without sharing our lock (two on one SQLite file), so its
    // reservation is the answer, as for a token seen before.
    if let Err(e) = &stored
        && e.is_unique_violation()
        && let Some(token) = &launch.client_token
        && let Some(first) = cloud.db.reservation_by_token(project, token).await?
    {
        held.release().await?;
        info!(reservation_id = %first, "client token stored meanwhile; answering with its reservation");
        return launched(cloud, project, first).await;
    }
    stored?;
    if !launch.interface_tags.is_empty() {
        cloud
            .db
            .put_tags(project, &interface_tags(&rows, &launch.interface_tags))
            .await?;
    }
    held.release().await?;
    // After the instances are stored: an address leads to an instance the
    // tables have. The pool exhausted, they launch without one (logged).
    crate::app::addresses::assign_at_launch(cloud, ctx, &mut rows).await?;
    schedule(cloud, ctx, &launch, &reservation_id, &rows).await?;
    info!(%reservation_id, instances = rows.len(), "instances sent to the scheduler");
    Ok(Launched {
        reservation_id,
        instances: rows,
    })
}

/// The reservation stored before for a token, with its instances.
async fn launched(
    cloud: &Cloud,
    project: &str,
    reservation_id: String,
) -> Result<Launched, InstanceError> {
    let instances = cloud
        .db
        .instances(project, None)
        .await?
        .into_iter()
        .filter(|i| i.reservation_id == reservation_id)
        .collect();
    Ok(Launched {
        reservation_id,
        instances,
    })
}

/// `tags` on the network interface of each of `rows`.
fn interface_tags(rows: &[InstanceRow], tags: &[(String, String)]) -> Vec<TagRow> {
    rows.iter()
        .flat_map(|row| {
            tags.iter().map(|(key, value)| TagRow {
                resource_id: ids::network_interface_id(&row.uuid),
                resource_type: "network-interface".to_owned(),
                key: key.clone(),
                value: value.clone(),
            })
        })
        .collect()
}

/// The reservation's `count` new instances, pending.
fn rows(caller: &Caller, reservation_id: &str, launch: &Launch, count: u64) -> Vec<InstanceRow> {
    let now = crate::db::now();
    let flavor = &launch.flavor;
    let groups: Vec<(String, String)> = launch
        .groups
        .iter()
        .map(|g| (g.group_id.clone(), g.name.clone()))
        .collect();
    (0..count)
        .map(|index| {
            let id = InstanceId::new();
            InstanceRow {
                uuid: id.to_string(),
                ec2_id: id.ec2_id(),
                project_id: caller.project_id.clone(),
                user_id: caller.user_id.clone(),
                reservation_id: reservation_id.to_owned(),
                launch_index: i64::try_from(index).unwrap_or(i64::MAX),
                image_id: launch.image.image_id.clone(),
                kernel_id: launch.kernel.as_ref().map(|k| k.image_id.clone()),
                ramdisk_id: launch.ramdisk.as_ref().map(|r| r.image_id.clone()),
                instance_type: flavor.name.clone(),
                vcpus: i64::from(flavor.vcpus),
                memory_mb: i64::try_from(flavor.memory_mb).unwrap_or(i64::MAX),
                root_gb: i64::try_from(flavor.root_gb).unwrap_or(i64::MAX),
                key_name: launch.key.as_ref().map(|k| k.name.clone()),
                key_data: launch.key.as_ref().map(|k| k.public_key.clone()),
                user_data: launch.user_data.clone(),
                requested_zone: launch.zone.clone(),
                state: InstanceState::Pending,
                task_state: Some("scheduling".into()),
                state_sequence: sequence(),
                launched_at: now.clone(),
                updated_at: now.clone(),
                groups: groups.clone(),
                wants_public_ip: launch.public_ip,
                attributes: launch.attributes,
                ..InstanceRow::default()
            }
        })
        .collect()
}

/// What the scheduler is sent for each of the reservation's instances.
fn requests(
    launch: &Launch,
    rows: &[InstanceRow],
    security_groups: &[SecurityGroupUpdate],
) -> Vec<RunInstance> {
    let image = request::image_ref(
        &launch.image,
        launch.kernel.as_ref(),
        launch.ramdisk.as_ref(),
    );
    rows.iter()
        .filter_map(|row| request::run_instance(row, &launch.flavor, &image, security_groups))
        .map(|mut r| {
            r.private_ip_address = launch.private_ip;
            r
        })
        .collect()
}

/// Casts the instances to the scheduler; when it cannot be reached they go
/// to error, with a reason that names no internal queue.
async fn schedule(
    cloud: &Cloud,
    ctx: &RequestContext,
    launch: &Launch,
    reservation_id: &str,
    rows: &[InstanceRow],
) -> Result<(), InstanceError> {
    let security_groups = request::security_groups(&cloud.db, &launch.groups).await?;
    let public = cloud.config.public.as_ref();
    let instances = requests(launch, rows, &security_groups)
        .into_iter()
        .map(|r| request::named(r, public))
        .collect();
    let cast = cloud
        .scheduler
        .run_instance(ctx, &ScheduleRunInstances { instances })
        .await;
    let Err(source) = cast else {
        return Ok(());
    };
    warn!(%reservation_id, error = %stratus_rpc::error::error_chain(&source), "the scheduler could not be reached");
    let failed = InstanceState::Pending
        .transition(InstanceEvent::BuildFailed)
        .unwrap_or(InstanceState::Error);
    for row in rows {
        record(
            &cloud.db,
            row,
            failed,
            None,
            Some(
                "the instance could not be scheduled: the scheduling service could not be reached",
            ),
        )
        .await?;
    }
    Err(InstanceError::NotScheduled {
        reservation: reservation_id.to_owned(),
        source: Box::new(source),
    })
}
