//! The pool: the lowest free address of the range, safe against another
//! api process allocating over the same database at once.

use std::net::Ipv4Addr;

use stratus_rpc::wire::addresses::public_pool;
use tracing::warn;

use super::AddressError;
use crate::config::PublicAddressing;
use crate::db::addresses::{AUTO, AddressRow};
use crate::db::{Db, DbError};
use crate::ec2::ids;

/// How often an allocation that lost a race for an address tries the next.
const ALLOCATION_TRIES: usize = 16;

/// Stores a new address from `public`'s pool: `specific` if given, else the
/// lowest free one (a race lost to another process moves to the next).
pub(super) async fn allocate_in(
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

/// A launch address for instance `uuid` of `project`; none when the pool
/// is exhausted (logged), or the one it has already.
pub(super) async fn allocate_auto(
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
