//! Public addresses: Elastic IPs a project allocates, associates, moves and
//! releases, and the address an instance gets at launch. The api's tables
//! say which address leads to which instance; the network host is told
//! after each change (and, should it miss one, reconciles from
//! [`listing`]). A change the network host could not apply is undone.

use std::net::Ipv4Addr;

use stratus_rpc::clients::NetworkClient;
use stratus_rpc::wire::addresses::{
    MapPublicAddresses, PublicAddresses, PublicMapping, public_pool,
};
use stratus_rpc::wire::conductor::{InstanceState, next_sequence};
use stratus_rpc::{RequestContext, RpcError};
use tracing::{info, warn};

use crate::config::PublicAddressing;
use crate::db::addresses::{AUTO, AddressRow, ELASTIC};
use crate::db::instances::InstanceRow;
use crate::db::{Db, DbError};
use crate::ec2::{Caller, Cloud, ids};

/// How often an allocation that lost a race for an address tries the next.
const ALLOCATION_TRIES: usize = 16;

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

/// Stores a new address from `public`'s pool: `specific` if given, else the
/// lowest free one (a race lost to another process moves to the next).
async fn allocate_in(
    db: &Db,
    public: &PublicAddressing,
    template: AddressRow,
    specific: Option<Ipv4Addr>,
) -> Result<AddressRow, AddressError> {
    if let Some(address) = specific {
        if !public_pool(&public.range).any(|a| a == address) {
            return Err(AddressError::OutsideRange {
                address: address.to_string(),
                range: public.range,
            });
        }
        let row = AddressRow {
            public_ip: address.to_string(),
            ..template
        };
        return match db.insert_address(&row).await {
            Ok(()) => Ok(row),
            Err(e) if e.is_unique_violation() => Err(AddressError::InUse(row.public_ip)),
            Err(e) => Err(e.into()),
        };
    }
    for _ in 0..ALLOCATION_TRIES {
        let taken: std::collections::HashSet<String> =
            db.allocated_addresses().await?.into_iter().collect();
        let Some(free) = public_pool(&public.range).find(|a| !taken.contains(&a.to_string()))
        else {
            return Err(AddressError::PoolExhausted {
                range: public.range,
            });
        };
        let row = AddressRow {
            public_ip: free.to_string(),
            allocation_id: ids::new_id("eipalloc"),
            ..template.clone()
        };
        match db.insert_address(&row).await {
            Ok(()) => return Ok(row),
            // Another allocation took it first: read again, take the next.
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AddressError::PoolExhausted {
        range: public.range,
    })
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
    let lock = cloud.project_lock(project);
    let _held = lock.lock().await;
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

/// A launch address for instance `uuid` of `project`; none when the pool
/// is exhausted (logged), or the one it has already.
async fn allocate_auto(
    db: &Db,
    public: &PublicAddressing,
    project: &str,
    uuid: &str,
) -> Result<Option<AddressRow>, DbError> {
    if let Some(held) = db.address_of_instance(uuid).await? {
        return Ok(Some(held));
    }
    let template = AddressRow {
        project_id: project.to_owned(),
        allocation_id: ids::new_id("eipalloc"),
        domain: "vpc".to_owned(),
        kind: AUTO.to_owned(),
        instance_uuid: Some(uuid.to_owned()),
        created_at: crate::db::now(),
        ..AddressRow::default()
    };
    match allocate_in(db, public, template, None).await {
        Ok(row) => Ok(Some(row)),
        Err(AddressError::Db(e)) => Err(e),
        Err(e) => {
            warn!(instance_id = %uuid, error = %stratus_rpc::error::error_chain(&e), "no public address for the instance");
            Ok(None)
        }
    }
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

/// A mapping of `address` to instance `uuid`, if both parse.
fn mapping(address: &str, uuid: &str) -> Option<PublicMapping> {
    Some(PublicMapping {
        address: address.parse().ok()?,
        instance_id: uuid.parse().ok()?,
    })
}

/// Tells the network host; sequence taken now, after the tables changed.
async fn push(
    network: &NetworkClient,
    ctx: &RequestContext,
    set: Vec<PublicMapping>,
    clear: Vec<Ipv4Addr>,
) -> Result<(), RpcError> {
    if set.is_empty() && clear.is_empty() {
        return Ok(());
    }
    let request = MapPublicAddresses {
        set,
        clear,
        sequence: next_sequence(),
    };
    network.map_public_addresses(ctx, &request).await
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
    push_or_undo(cloud, ctx, change).await?;
    info!(address = %address.public_ip, "address released");
    Ok(())
}

/// The project's Elastic IPs (launch addresses are not listed, as on EC2).
pub async fn describe(cloud: &Cloud, caller: &Caller) -> Result<Vec<AddressRow>, AddressError> {
    let all = cloud.db.addresses(&caller.project_id).await?;
    Ok(all.into_iter().filter(AddressRow::is_elastic).collect())
}

/// Gives each of a new reservation's instances that wants one a launch
/// address (recorded on its row), and tells the network host in the
/// background (the instances have no fixed IP yet: nothing is urgent, and
/// the host's reconcile catches a lost push).
pub async fn assign_at_launch(
    cloud: &Cloud,
    ctx: &RequestContext,
    rows: &mut [InstanceRow],
) -> Result<(), DbError> {
    let Some(public) = cloud.config.public.as_ref() else {
        return Ok(());
    };
    let mut set = Vec::new();
    for row in rows.iter_mut().filter(|r| r.wants_public_ip) {
        if let Some(address) = allocate_auto(&cloud.db, public, &row.project_id, &row.uuid).await? {
            set.extend(mapping(&address.public_ip, &row.uuid));
            row.public_ip = Some(address.public_ip);
        }
    }
    let network = cloud.network.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = push(&network, &ctx, set, vec![]).await {
            warn!(error = %stratus_rpc::error::error_chain(&e), "could not tell the network host the launch addresses; its reconcile will");
        }
    });
    Ok(())
}

/// Tells the network host that `addresses`, freed with a gone instance,
/// lead nowhere (in the background; its reconcile catches a lost push).
pub fn clear_in_background(network: &NetworkClient, ctx: &RequestContext, addresses: Vec<String>) {
    let clear: Vec<Ipv4Addr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if clear.is_empty() {
        return;
    }
    let network = network.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = push(&network, &ctx, vec![], clear).await {
            warn!(error = %stratus_rpc::error::error_chain(&e), "could not tell the network host the freed addresses; its reconcile will");
        }
    });
}

/// Every associated address, for the network host's reconcile: `as_of` is
/// taken before the read, so a change pushed after it is newer.
pub async fn listing(db: &Db) -> Result<PublicAddresses, DbError> {
    let as_of = next_sequence();
    let mappings = db
        .public_mappings()
        .await?
        .iter()
        .filter_map(|(address, uuid)| mapping(address, uuid))
        .collect();
    Ok(PublicAddresses { mappings, as_of })
}
