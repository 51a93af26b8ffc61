//! What the network host is told: each change as it happens, launch
//! addresses and addresses freed with an instance in the background, and
//! the full listing it reconciles from.

use std::net::Ipv4Addr;

use stratus_rpc::clients::NetworkClient;
use stratus_rpc::wire::addresses::{MapPublicAddresses, PublicAddresses, PublicMapping};
use stratus_rpc::wire::conductor::next_sequence;
use stratus_rpc::{RequestContext, RpcError};
use tracing::warn;

use super::pool::allocate_auto;
use crate::db::instances::InstanceRow;
use crate::db::{Db, DbError};
use crate::ec2::Cloud;

/// A mapping of `address` to instance `uuid`, if both parse.
pub(super) fn mapping(address: &str, uuid: &str) -> Option<PublicMapping> {
    Some(PublicMapping {
        address: address.parse().ok()?,
        instance_id: uuid.parse().ok()?,
    })
}

/// Tells the network host; sequence taken now, after the tables changed.
pub(super) async fn push(
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
