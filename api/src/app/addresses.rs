//! Public addresses: Elastic IPs a project allocates, associates, moves and
//! releases, and the address an instance gets at launch. The api's tables
//! say which address leads to which instance; the network host is told
//! after each change (and, should it miss one, reconciles from
//! [`listing`]). A change the network host could not apply is undone.

mod network;
mod pool;

use std::net::Ipv4Addr;

use stratus_rpc::wire::addresses::PublicMapping;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::{RequestContext, RpcError};
use tracing::{info, warn};

use crate::config::PublicAddressing;
use crate::db::DbError;
use crate::db::addresses::{AddressRow, ELASTIC};
use crate::db::instances::InstanceRow;
use crate::ec2::{Caller, Cloud, ids};
pub use network::{assign_at_launch, clear_in_background, listing};
use network::{mapping, push};
use pool::{allocate_auto, allocate_in};

/// An address as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRef {
    /// By its public address.
    PublicIp(String),
    /// By `eipalloc-…`.
    AllocationId(String),
}

/// An association as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociationRef {
    /// By the associated public address.
    PublicIp(String),
    /// By `eipassoc-…`.
    AssociationId(String),
}

/// Why an address operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The cloud has no public range configured.
    #[error("this cloud has no public address range")]
    NoPublicRange,
    /// The project holds as many Elastic IPs as it may.
    #[error("the project holds its limit of {limit} addresses")]
    LimitExceeded {
        /// The quota.
        limit: u64,
    },
    /// Every address of the range is taken.
    #[error("every address of {range} is allocated")]
    PoolExhausted {
        /// The range.
        range: ipnet::Ipv4Net,
    },
    /// The address asked for is allocated already.
    #[error("address {0} is in use")]
    InUse(String),
    /// The address asked for is not in the range.
    #[error("address {address} is not in the public range {range}")]
    OutsideRange {
        /// As asked.
        address: String,
        /// The range.
        range: ipnet::Ipv4Net,
    },
    /// No such address in the project.
    #[error("address {0} not found")]
    AddressNotFound(String),
    /// No such allocation id in the project.
    #[error("allocation {0} not found")]
    AllocationNotFound(String),
    /// No such association in the project.
    #[error("association {0} not found")]
    AssociationNotFound(String),
    /// No such instance in the project.
    #[error("instance {0} not found")]
    InstanceNotFound(String),
    /// The instance is going or gone.
    #[error("instance {instance} is {state}")]
    IncorrectInstanceState {
        /// Its EC2 id.
        instance: String,
        /// Its state.
        state: InstanceState,
    },
    /// The address is associated and reassociation was not allowed.
    #[error("address {0} is already associated")]
    AlreadyAssociated(String),
    /// A vpc address still associated cannot be released.
    #[error("address {0} is associated; disassociate it first")]
    Associated(String),
    /// Another request changed the address meanwhile.
    #[error("address {0} changed while this request ran")]
    Changed(String),
    /// The network host could not apply the change; it was undone.
    #[error("the network host could not map the addresses; the change was undone")]
    Network(#[source] Box<RpcError>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The cloud's public addressing, or [`AddressError::NoPublicRange`].
fn public(cloud: &Cloud) -> Result<&PublicAddressing, AddressError> {
    cloud
        .config
        .public
        .as_ref()
        .ok_or(AddressError::NoPublicRange)
}

/// AllocateAddress: a new Elastic IP for the caller's project, within its
/// quota.
pub async fn allocate(
    cloud: &Cloud,
    caller: &Caller,
    domain: &str,
    specific: Option<Ipv4Addr>,
) -> Result<AddressRow, AddressError> {
    let public = public(cloud)?;
    let project = &caller.project_id;
    // The count and the insert under the project's lock: two requests
    // cannot both take the last slot.
    let _held = cloud.lock_project(project).await?;
    let have = cloud
        .db
        .addresses(project)
        .await?
        .iter()
        .filter(|a| a.is_elastic())
        .count() as u64;
    let limit = cloud.config.quotas.addresses;
    if have >= limit {
        return Err(AddressError::LimitExceeded { limit });
    }
    let template = AddressRow {
        project_id: project.clone(),
        allocation_id: ids::new_id("eipalloc"),
        domain: domain.to_owned(),
        kind: ELASTIC.to_owned(),
        created_at: crate::db::now(),
        ..AddressRow::default()
    };
    let row = allocate_in(&cloud.db, public, template, specific).await?;
    info!(address = %row.public_ip, allocation_id = %row.allocation_id, project = %project, "address allocated");
    Ok(row)
}

/// The project's Elastic IP `which` names (a launch address is not the
/// user's: it is not found, as another project's is not).
async fn find(
    cloud: &Cloud,
    caller: &Caller,
    which: &AddressRef,
) -> Result<AddressRow, AddressError> {
    let all = cloud.db.addresses(&caller.project_id).await?;
    let found = all
        .into_iter()
        .filter(AddressRow::is_elastic)
        .find(|a| match which {
            AddressRef::PublicIp(ip) => &a.public_ip == ip,
            AddressRef::AllocationId(id) => &a.allocation_id == id,
        });
    found.ok_or_else(|| match which {
        AddressRef::PublicIp(ip) => AddressError::AddressNotFound(ip.clone()),
        AddressRef::AllocationId(id) => AddressError::AllocationNotFound(id.clone()),
    })
}

/// Pushes a change, undoing it in the tables (`before` rows back,
/// `created` ones deleted) when the network host could not apply it.
async fn push_or_undo(
    cloud: &Cloud,
    ctx: &RequestContext,
    change: Pushed,
) -> Result<(), AddressError> {
    let Err(e) = push(&cloud.network, ctx, change.set, change.clear).await else {
        return Ok(());
    };
    warn!(error = %stratus_rpc::error::error_chain(&e), "the network host could not map public addresses; undoing");
    if let Err(undo) = cloud
        .db
        .restore_addresses(&change.before, &change.created)
        .await
    {
        warn!(error = %stratus_rpc::error::error_chain(&undo), "could not undo the address change; the network host's reconcile settles it");
    }
    Err(AddressError::Network(Box::new(e)))
}

/// What a change pushes, and how to undo it.
#[derive(Debug, Default)]
struct Pushed {
    set: Vec<PublicMapping>,
    clear: Vec<Ipv4Addr>,
    before: Vec<AddressRow>,
    created: Vec<String>,
}

impl Pushed {
    /// Gives instance `uuid` (left without an address) a fresh launch
    /// address if it launched wanting one and is not going.
    async fn refill(&mut self, cloud: &Cloud, uuid: &str) -> Result<(), AddressError> {
        let Some(instance) = cloud.db.instance_by_uuid(uuid).await? else {
            return Ok(());
        };
        if !instance.wants_public_ip || !is_live(&instance) {
            return Ok(());
        }
        let Some(public) = cloud.config.public.as_ref() else {
            return Ok(());
        };
        if let Some(fresh) =
            allocate_auto(&cloud.db, public, &instance.project_id, &instance.uuid).await?
        {
            self.created.push(fresh.public_ip.clone());
            self.set.extend(mapping(&fresh.public_ip, uuid));
        }
        Ok(())
    }
}

/// Whether an address may lead to `i` (not going or gone).
fn is_live(i: &InstanceRow) -> bool {
    !matches!(
        i.state,
        InstanceState::ShuttingDown | InstanceState::Terminated | InstanceState::Error
    )
}

/// AssociateAddress: points the address at one of the project's instances
/// (its launch address is freed; an Elastic IP it had is disassociated).
/// An address associated elsewhere moves only when `allow_reassociation`,
/// or always for a `standard` one, as EC2-Classic moved them.
pub async fn associate(
    cloud: &Cloud,
    caller: &Caller,
    ctx: &RequestContext,
    which: &AddressRef,
    instance_id: &str,
    allow_reassociation: bool,
) -> Result<String, AddressError> {
    public(cloud)?;
    let address = find(cloud, caller, which).await?;
    let ids = [instance_id.to_owned()];
    let instance = cloud
        .db
        .instances(&caller.project_id, Some(&ids))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AddressError::InstanceNotFound(instance_id.to_owned()))?;
    if !is_live(&instance) {
        return Err(AddressError::IncorrectInstanceState {
            instance: instance.ec2_id,
            state: instance.state,
        });
    }
    if address.instance_uuid.as_deref() == Some(instance.uuid.as_str())
        && let Some(association) = &address.association_id
    {
        return Ok(association.clone());
    }
    let moved_from = address.instance_uuid.clone();
    if moved_from.is_some() && !allow_reassociation && address.domain == "vpc" {
        return Err(AddressError::AlreadyAssociated(address.public_ip));
    }
    let mut change = Pushed {
        before: vec![address.clone()],
        ..Pushed::default()
    };
    if let Some(other) = cloud.db.address_of_instance(&instance.uuid).await? {
        change
            .clear
            .extend(other.public_ip.parse::<Ipv4Addr>().ok());
        change.before.push(other);
    }
    let association_id = ids::new_id("eipassoc");
    if !cloud
        .db
        .associate_address(&address, &instance.uuid, &association_id)
        .await?
    {
        return Err(AddressError::Changed(address.public_ip));
    }
    change
        .set
        .extend(mapping(&address.public_ip, &instance.uuid));
    if let Some(previous) = &moved_from {
        change.refill(cloud, previous).await?;
    }
    push_or_undo(cloud, ctx, change).await?;
    info!(address = %address.public_ip, instance_id = %instance.ec2_id, %association_id, "address associated");
    Ok(association_id)
}

/// DisassociateAddress: the address leads nowhere; its instance gets a
/// fresh launch address if it launched wanting one.
pub async fn disassociate(
    cloud: &Cloud,
    caller: &Caller,
    ctx: &RequestContext,
    which: &AssociationRef,
) -> Result<(), AddressError> {
    public(cloud)?;
    let address = match which {
        AssociationRef::PublicIp(ip) => {
            find(cloud, caller, &AddressRef::PublicIp(ip.clone())).await?
        }
        AssociationRef::AssociationId(id) => cloud
            .db
            .addresses(&caller.project_id)
            .await?
            .into_iter()
            .filter(AddressRow::is_elastic)
            .find(|a| a.association_id.as_deref() == Some(id.as_str()))
            .ok_or_else(|| AddressError::AssociationNotFound(id.clone()))?,
    };
    let (Some(uuid), Some(association)) = (&address.instance_uuid, &address.association_id) else {
        // Not associated: nothing to do, as EC2 answers.
        return Ok(());
    };
    let mut change = Pushed {
        before: vec![address.clone()],
        ..Pushed::default()
    };
    unlink(cloud, &address, association, uuid, &mut change).await?;
    push_or_undo(cloud, ctx, change).await?;
    info!(address = %address.public_ip, "address disassociated");
    Ok(())
}

/// Disassociates `address` from `uuid` in the tables and notes the push.
async fn unlink(
    cloud: &Cloud,
    address: &AddressRow,
    association: &str,
    uuid: &str,
    change: &mut Pushed,
) -> Result<(), AddressError> {
    if !cloud
        .db
        .disassociate_address(&address.public_ip, association)
        .await?
    {
        return Err(AddressError::Changed(address.public_ip.clone()));
    }
    change
        .clear
        .extend(address.public_ip.parse::<Ipv4Addr>().ok());
    change.refill(cloud, uuid).await
}

/// ReleaseAddress: the address goes back to the pool. An associated
/// `standard` one is disassociated first (as EC2-Classic did); an
/// associated `vpc` one is refused.
pub async fn release(
    cloud: &Cloud,
    caller: &Caller,
    ctx: &RequestContext,
    which: &AddressRef,
) -> Result<(), AddressError> {
    public(cloud)?;
    let address = find(cloud, caller, which).await?;
    let mut change = Pushed {
        before: vec![address.clone()],
        ..Pushed::default()
    };
    if let (Some(uuid), Some(association)) = (&address.instance_uuid, &address.association_id) {
        if address.domain == "vpc" {
            return Err(AddressError::Associated(address.public_ip));
        }
        unlink(cloud, &address, association, uuid, &mut change).await?;
    }
    if !cloud.db.delete_address(&address.public_ip).await? {
        return Err(AddressError::Changed(address.public_ip));
    }
    cloud.db.drop_tags(&address.allocation_id).await?;
    push_or_undo(cloud, ctx, change).await?;
    info!(address = %address.public_ip, "address released");
    Ok(())
}

/// The project's Elastic IPs (launch addresses are not listed, as on EC2).
pub async fn describe(cloud: &Cloud, caller: &Caller) -> Result<Vec<AddressRow>, AddressError> {
    let all = cloud.db.addresses(&caller.project_id).await?;
    Ok(all.into_iter().filter(AddressRow::is_elastic).collect())
}
