//! The network controller's methods (topic `network`).

use crate::declare::declare_service;
use crate::wire::addresses::MapPublicAddresses;
use crate::wire::network::{
    AllocateFixedIp, FixedIp, GetProjectNetwork, ProjectNetwork, ReleaseFixedIp,
};

declare_service! {
    /// The topic the network controller serves.
    topic "network";
    /// Talks to the network controller.
    client NetworkClient;
    /// What the network controller does for its callers.
    api NetworkApi;
    methods {
        /// Gives an instance its fixed IP, or returns the one it already has.
        ALLOCATE_FIXED_IP: call allocate_fixed_ip(request: AllocateFixedIp) -> FixedIp;
        /// Returns an instance's fixed IP to the pool.
        RELEASE_FIXED_IP: call release_fixed_ip(request: ReleaseFixedIp);
        /// Maps public addresses to instances (or to nothing) on the
        /// network host, all in one atomic change.
        MAP_PUBLIC_ADDRESSES: call map_public_addresses(request: MapPublicAddresses);
        /// The project's network (CIDR and gateway), made now if the
        /// project has none yet: the api's default VPC is this network.
        PROJECT_NETWORK: call project_network(request: GetProjectNetwork) -> ProjectNetwork;
    }
}

impl NetworkClient {
    /// How long its calls wait for a reply.
    pub fn timeout(&self) -> std::time::Duration {
        self.rpc.call_timeout()
    }
}
