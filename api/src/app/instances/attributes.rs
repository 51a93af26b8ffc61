//! Changing an instance's attributes (ModifyInstanceAttribute): its type and
//! user data while it is stopped, termination protection, what a shutdown
//! from inside the guest does, and what the host enforces (the groups, the
//! source/destination check).

use stratus_rpc::wire::compute::{Flavor, InstanceGroups, SourceDestCheck};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::{RequestContext, RpcError};
use tracing::{info, warn};

use super::placed;
use crate::app::quota::{self, QuotaError};
use crate::app::security_groups::{GroupError, group_update};
use crate::db::DbError;
use crate::db::groups::GroupRow;
use crate::db::instances::{InstanceRow, ShutdownBehavior};
use crate::ec2::Cloud;

/// One change ModifyInstanceAttribute asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new instance type (stopped instances only).
    InstanceType(Flavor),
    /// New base64 user data, or none (stopped instances only).
    UserData(Option<String>),
    /// Termination protection on or off.
    DisableApiTermination(bool),
    /// What a shutdown from inside the guest does.
    ShutdownBehavior(ShutdownBehavior),
    /// The source/destination check on or off.
    SourceDestCheck(bool),
    /// A new set of security groups (the project's).
    Groups(Vec<GroupRow>),
}

impl Change {
    /// The attribute's name, as EC2 spells it.
    pub fn attribute(&self) -> &'static str {
        match self {
            Self::InstanceType(_) => "instanceType",
            Self::UserData(_) => "userData",
            Self::DisableApiTermination(_) => "disableApiTermination",
            Self::ShutdownBehavior(_) => "instanceInitiatedShutdownBehavior",
            Self::SourceDestCheck(_) => "sourceDestCheck",
            Self::Groups(_) => "groupSet",
        }
    }
}

/// Why an attribute was not changed.
#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    /// The attribute changes only while the instance is stopped.
    #[error("instance {instance} is {state}: {attribute} changes only while it is stopped")]
    NotStopped {
        /// Its EC2 id.
        instance: String,
        /// Its state.
        state: InstanceState,
        /// The attribute asked for.
        attribute: &'static str,
    },
    /// The instance is gone (terminated or shutting down).
    #[error("instance {instance} is {state}")]
    Gone {
        /// Its EC2 id.
        instance: String,
        /// Its state.
        state: InstanceState,
    },
    /// The attribute changes only while the instance is running or stopped.
    #[error(
        "instance {instance} is {state}: {attribute} changes only while it is running or stopped"
    )]
    NotSettled {
        /// Its EC2 id.
        instance: String,
        /// Its state.
        state: InstanceState,
        /// The attribute asked for.
        attribute: &'static str,
    },
    /// The instance's host could not apply the change (it was undone).
    #[error("instance {instance}: its host could not apply the change")]
    HostUnreachable {
        /// Its EC2 id.
        instance: String,
        /// The bus's error (boxed: it is large).
        #[source]
        source: Box<RpcError>,
    },
    /// A security group could not be read.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The new type does not fit the project's quotas.
    #[error("the new instance type exceeds the project's quota")]
    Quota(#[source] QuotaError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Makes `change` to instance `i` of the caller's project.
pub async fn modify(
    cloud: &Cloud,
    ctx: &RequestContext,
    i: &InstanceRow,
    change: Change,
) -> Result<(), AttributeError> {
    if i.state.is_gone() || i.state == InstanceState::ShuttingDown {
        return Err(AttributeError::Gone {
            instance: i.ec2_id.clone(),
            state: i.state,
        });
    }
    let attribute = change.attribute();
    let not_stopped = || AttributeError::NotStopped {
        instance: i.ec2_id.clone(),
        state: i.state,
        attribute,
    };
    let mut attributes = i.attributes;
    match change {
        Change::InstanceType(flavor) => return resize(cloud, i, &flavor, not_stopped).await,
        Change::UserData(data) => {
            if i.state != InstanceState::Stopped
                || !cloud.db.set_user_data(&i.uuid, data.as_deref()).await?
            {
                return Err(not_stopped());
            }
            info!(instance_id = %i.ec2_id, "user data changed");
            return Ok(());
        }
        Change::DisableApiTermination(on) => attributes.disable_api_termination = on,
        Change::ShutdownBehavior(b) => attributes.shutdown_behavior = b,
        Change::SourceDestCheck(checked) => {
            return source_dest_check(cloud, ctx, i, checked).await;
        }
        Change::Groups(groups) => return regroup(cloud, ctx, i, &groups).await,
    }
    cloud.db.set_attributes(&i.uuid, &attributes).await?;
    info!(instance_id = %i.ec2_id, attribute, "instance attribute changed");
    Ok(())
}

/// Turns running or stopped instance `i`'s source/destination check on or
/// off, on its host and in its row. The host's anti-spoofing enforces it:
/// unchecked, the guest may send from addresses outside the cloud, never
/// from another of the cloud's. The row goes off before the host does, and
/// the host on before the row, so a failure between the two never leaves
/// the row showing a check the host does not make; a host that cannot be
/// told leaves both as they were.
async fn source_dest_check(
    cloud: &Cloud,
    ctx: &RequestContext,
    i: &InstanceRow,
    checked: bool,
) -> Result<(), AttributeError> {
    // One change at a time per project: the row and the host end on the
    // same value when two requests race.
    let _held = cloud.lock_project(&i.project_id).await?;
    let now = cloud.db.instance_by_ec2_id(&i.ec2_id).await?;
    let i = now.as_ref().unwrap_or(i);
    if i.attributes.source_dest_check == checked {
        return Ok(());
    }
    let settled = matches!(i.state, InstanceState::Running | InstanceState::Stopped);
    let Some((host, instance)) = placed(i).filter(|_| settled) else {
        // A pending one's build carries the value it launched with.
        return Err(AttributeError::NotSettled {
            instance: i.ec2_id.clone(),
            state: i.state,
            attribute: "sourceDestCheck",
        });
    };
    let request = SourceDestCheck {
        instance_id: instance.instance_id,
        checked,
    };
    let unreachable = |source| AttributeError::HostUnreachable {
        instance: i.ec2_id.clone(),
        source: Box::new(source),
    };
    if checked {
        let told = cloud.compute.set_source_dest_check(ctx, &host, request);
        told.await.map_err(unreachable)?;
        cloud.db.set_source_dest_check(&i.uuid, true).await?;
    } else {
        cloud.db.set_source_dest_check(&i.uuid, false).await?;
        let told = cloud.compute.set_source_dest_check(ctx, &host, request);
        if let Err(source) = told.await {
            cloud.db.set_source_dest_check(&i.uuid, true).await?;
            return Err(unreachable(source));
        }
    }
    info!(instance_id = %i.ec2_id, checked, "source/destination check changed");
    Ok(())
}

/// Gives stopped instance `i` the type `flavor`, if the project's quotas
/// hold it in place of the old one. Stopped instances count in the usage,
/// so the check here is the one the next start would need.
async fn resize(
    cloud: &Cloud,
    i: &InstanceRow,
    flavor: &Flavor,
    not_stopped: impl FnOnce() -> AttributeError,
) -> Result<(), AttributeError> {
    if i.state != InstanceState::Stopped {
        return Err(not_stopped());
    }
    // Under the project's lock, as launches check theirs: a launch and a
    // resize cannot both take the last room.
    let _held = cloud.lock_project(&i.project_id).await?;
    let mut usage = cloud.db.usage(&i.project_id).await?;
    usage.instances = usage.instances.saturating_sub(1);
    usage.vcpus = usage
        .vcpus
        .saturating_sub(u64::try_from(i.vcpus).unwrap_or(0));
    usage.memory_mb = usage
        .memory_mb
        .saturating_sub(u64::try_from(i.memory_mb).unwrap_or(0));
    quota::fit(&cloud.config.quotas, usage, flavor, 1, 1).map_err(AttributeError::Quota)?;
    if !cloud.db.set_instance_type(&i.uuid, flavor).await? {
        return Err(not_stopped());
    }
    info!(instance_id = %i.ec2_id, instance_type = %flavor.name, "instance type changed");
    Ok(())
}

/// Gives running or stopped instance `i` the security groups `groups`:
/// stored, its host told to re-apply its filters (the change undone when the
/// host cannot be told), and every host told the members of the groups it
/// left and joined.
async fn regroup(
    cloud: &Cloud,
    ctx: &RequestContext,
    i: &InstanceRow,
    groups: &[GroupRow],
) -> Result<(), AttributeError> {
    let settled = matches!(i.state, InstanceState::Running | InstanceState::Stopped);
    let Some((host, instance)) = placed(i).filter(|_| settled) else {
        // A pending one's build carries its groups as launched.
        return Err(AttributeError::NotSettled {
            instance: i.ec2_id.clone(),
            state: i.state,
            attribute: "groupSet",
        });
    };
    let old: Vec<String> = i.groups.iter().map(|(id, _)| id.clone()).collect();
    let new: Vec<String> = groups.iter().map(|g| g.group_id.clone()).collect();
    if old == new {
        return Ok(());
    }
    cloud.db.set_instance_groups(&i.uuid, &new).await?;
    let mut security_groups = Vec::with_capacity(groups.len());
    for g in groups {
        security_groups.push(group_update(&cloud.db, g).await?);
    }
    let request = InstanceGroups {
        instance_id: instance.instance_id,
        security_groups,
    };
    if let Err(source) = cloud.compute.set_instance_groups(ctx, &host, request).await {
        cloud.db.set_instance_groups(&i.uuid, &old).await?;
        return Err(AttributeError::HostUnreachable {
            instance: i.ec2_id.clone(),
            source: Box::new(source),
        });
    }
    info!(instance_id = %i.ec2_id, groups = ?new, "instance security groups changed");
    // Its address left some groups and joined others: rules naming those
    // as peers change on every host.
    let mut changed: Vec<String> = old.into_iter().chain(new).collect();
    changed.sort();
    changed.dedup();
    for g in cloud.db.referenced_groups(&changed).await? {
        if let Err(e) = crate::app::security_groups::fan_out(cloud, ctx, &g).await {
            warn!(group = %g.group_id, error = %stratus_rpc::error::error_chain(&e), "could not fan out a membership change");
        }
    }
    Ok(())
}
