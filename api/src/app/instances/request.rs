//! The `run_instance` request the scheduler is sent for one stored
//! instance: built the same way at launch and when a launch is re-cast
//! after a restart, from what the instance's row and the images and groups
//! tables hold.

use stratus_rpc::wire::addresses::public_dns_name;
use stratus_rpc::wire::compute::{Flavor, ImageProperties, ImageRef, RunInstance};
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::wire::scheduler::Placement;

use crate::app::security_groups::{GroupError, group_update};
use crate::config::PublicAddressing;
use crate::db::groups::GroupRow;
use crate::db::images::ImageRow;
use crate::db::instances::InstanceRow;
use crate::db::{Db, DbError};

/// Why a stored instance's request could not be built again.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// An image it boots is no longer registered (or visible to it).
    #[error("instance {instance}: image {image} is no longer registered")]
    ImageGone {
        /// Its EC2 id.
        instance: String,
        /// The image.
        image: String,
    },
    /// Its stored ids do not parse.
    #[error("instance {instance}: its stored id or project does not parse")]
    StoredIds {
        /// Its EC2 id.
        instance: String,
    },
    /// A security group could not be read.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Where an image and its kernel and ramdisk are, as compute hosts take it.
pub fn image_ref(
    image: &ImageRow,
    kernel: Option<&ImageRow>,
    ramdisk: Option<&ImageRow>,
) -> ImageRef {
    ImageRef {
        id: image.image_id.clone(),
        disk: image.location.clone().into(),
        kernel: kernel.map(|k| k.location.clone().into()),
        ramdisk: ramdisk.map(|r| r.location.clone().into()),
        properties: ImageProperties {
            architecture: Some(image.architecture.clone()),
            hypervisor_type: None,
        },
    }
}

/// The groups as hosts take them, with their rules and members.
pub async fn security_groups(
    db: &Db,
    groups: &[GroupRow],
) -> Result<Vec<SecurityGroupUpdate>, GroupError> {
    let mut updates = Vec::with_capacity(groups.len());
    for g in groups {
        updates.push(group_update(db, g).await?);
    }
    Ok(updates)
}

/// The request for `row`, unplaced (none when its stored ids do not parse).
pub fn run_instance(
    row: &InstanceRow,
    flavor: &Flavor,
    image: &ImageRef,
    security_groups: &[SecurityGroupUpdate],
) -> Option<RunInstance> {
    Some(RunInstance {
        instance_id: row.uuid.parse().ok()?,
        project_id: row.project_id.parse().ok()?,
        flavor: flavor.clone(),
        image: image.clone(),
        security_groups: security_groups.to_vec(),
        key_data: row.key_data.clone(),
        key_name: row.key_name.clone(),
        user_data: row.user_data.clone(),
        reservation_id: Some(row.reservation_id.clone()),
        placement: Placement {
            availability_zone: row.requested_zone.clone(),
            ..Placement::default()
        },
        public_address: row.public_ip.as_deref().and_then(|a| a.parse().ok()),
        public_hostname: None,
        private_ip_address: None,
        // A rebuilt or resumed build keeps what its owner set.
        source_dest_check: row.attributes.source_dest_check,
    })
}

/// `request` with the public DNS name of its public address, when the
/// cloud has public addressing.
pub fn named(mut request: RunInstance, public: Option<&PublicAddressing>) -> RunInstance {
    request.public_hostname = request
        .public_address
        .zip(public)
        .map(|(address, public)| public_dns_name(address, &public.dns_domain));
    request
}

/// The flavor `row` has now (launched with, or changed to while stopped).
pub(super) fn flavor(row: &InstanceRow) -> Flavor {
    Flavor {
        name: row.instance_type.clone(),
        vcpus: u32::try_from(row.vcpus).unwrap_or(0),
        memory_mb: u64::try_from(row.memory_mb).unwrap_or(0),
        root_gb: u64::try_from(row.root_gb).unwrap_or(0),
    }
}

/// The request `row` was launched with, built again from the tables.
pub async fn rebuild(db: &Db, row: &InstanceRow) -> Result<RunInstance, RebuildError> {
    let find = |id: Option<&str>| {
        let id = id.map(str::to_owned);
        async move {
            let Some(id) = id else { return Ok(None) };
            match db.image(&row.project_id, &id).await? {
                Some(found) => Ok(Some(found)),
                None => Err(RebuildError::ImageGone {
                    instance: row.ec2_id.clone(),
                    image: id,
                }),
            }
        }
    };
    let image = find(Some(&row.image_id))
        .await?
        .ok_or_else(|| RebuildError::ImageGone {
            instance: row.ec2_id.clone(),
            image: row.image_id.clone(),
        })?;
    let kernel = find(row.kernel_id.as_deref()).await?;
    let ramdisk = find(row.ramdisk_id.as_deref()).await?;
    let wanted: Vec<&str> = row.groups.iter().map(|(id, _)| id.as_str()).collect();
    let groups: Vec<GroupRow> = db
        .groups(&row.project_id)
        .await?
        .into_iter()
        .filter(|g| wanted.contains(&g.group_id.as_str()))
        .collect();
    let groups = security_groups(db, &groups).await?;
    let image = image_ref(&image, kernel.as_ref(), ramdisk.as_ref());
    let mut request = run_instance(row, &flavor(row), &image, &groups).ok_or_else(|| {
        RebuildError::StoredIds {
            instance: row.ec2_id.clone(),
        }
    })?;
    request.private_ip_address = db.requested_ip(&row.uuid).await?;
    Ok(request)
}
