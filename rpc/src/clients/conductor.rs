//! The conductor's methods (topic `conductor`, served by the api service,
//! which owns the database).

use crate::declare::declare_service;
use crate::wire::addresses::{PublicAddresses, PublicAddressesQuery};
use crate::wire::conductor::{
    BuildClaim, ClaimAnswer, GuestMetadata, InstanceStatesQuery, InstanceUpdate, KnownInstance,
};

declare_service! {
    /// The topic the conductor serves.
    topic "conductor";
    /// Talks to the conductor.
    client ConductorClient;
    /// What the conductor records for compute hosts and schedulers.
    api ConductorApi;
    methods {
        /// Records an instance's state change.
        INSTANCE_UPDATE: cast instance_update(update: InstanceUpdate);
        /// Records what the metadata service tells an instance.
        INSTANCE_METADATA: cast instance_metadata(metadata: GuestMetadata);
        /// Grants or refuses one placement of an instance to a host, before
        /// the host builds anything.
        CLAIM_BUILD: call claim_build(claim: BuildClaim) -> ClaimAnswer;
        /// What the database says of instances a host or the network
        /// controller holds something of, for their reconciles.
        INSTANCE_STATES: call instance_states(query: InstanceStatesQuery) -> Vec<KnownInstance>;
        /// Every associated public address, for the network host's
        /// reconcile.
        PUBLIC_ADDRESSES: call public_addresses(query: PublicAddressesQuery) -> PublicAddresses;
    }
}
