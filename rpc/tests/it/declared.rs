//! A service written against a declared API (`NetworkApi`): its typed client
//! reaches it, and the dispatch the declaration generates decodes arguments,
//! encodes replies and refuses what the API does not have.

use async_trait::async_trait;
use serde_json::json;
use stratus_rpc::clients::network::{self, NetworkApi, NetworkClient};
use stratus_rpc::error::kinds;
use stratus_rpc::wire::addresses::MapPublicAddresses;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::{
    AllocateFixedIp, FixedIp, GetProjectNetwork, ProjectNetwork, ReleaseFixedIp,
};
use stratus_rpc::{Handled, HandlerError, RequestContext, RpcError, Serves, Target};

use crate::harness::Harness;

/// Gives every instance the same address and knows no instance to release.
struct OneAddress;

impl Serves for OneAddress {
    type Api = dyn NetworkApi;
}

#[async_trait]
impl NetworkApi for OneAddress {
    async fn allocate_fixed_ip(&self, _: &RequestContext, _: AllocateFixedIp) -> Handled<FixedIp> {
        Ok(FixedIp {
            address: "10.0.0.2".into(),
            cidr: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            netmask: "255.255.255.0".into(),
            bridge: "br100".into(),
            dhcp_server: "10.0.0.1".into(),
            vlan: None,
            dns: vec![],
        })
    }

    async fn release_fixed_ip(&self, _: &RequestContext, request: ReleaseFixedIp) -> Handled {
        Err(HandlerError::permanent(
            "NoSuchInstance",
            format!("no address for {}", request.instance_id),
        ))
    }

    async fn map_public_addresses(&self, _: &RequestContext, _: MapPublicAddresses) -> Handled {
        Err(HandlerError::permanent("NoPublicNetwork", "none here"))
    }

    async fn project_network(
        &self,
        _: &RequestContext,
        _: GetProjectNetwork,
    ) -> Handled<ProjectNetwork> {
        Ok(ProjectNetwork {
            cidr: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
        })
    }
}

fn remote_kind(result: Result<serde_json::Value, RpcError>) -> Option<String> {
    result
        .expect_err("refused")
        .remote()
        .map(|e| e.kind.clone())
}

pub async fn declared_service_dispatches_by_method_name(h: &impl Harness) {
    let transport = h.transport().await;
    let _serving = transport
        .serve(network::TOPIC, None, std::sync::Arc::new(OneAddress))
        .await
        .expect("serve");
    let ctx = RequestContext::system();
    let rpc = h.client().await;
    let client = NetworkClient::new(rpc.clone());
    let instance_id = InstanceId::new();
    let allocate = AllocateFixedIp {
        instance_id,
        project_id: "p1".parse().expect("project"),
        mac: "02:16:3e:00:00:01".parse().expect("mac"),
        deadline_ms: None,
        requested_address: None,
    };
    let ip = client
        .allocate_fixed_ip(&ctx, &allocate)
        .await
        .expect("allocated");
    assert_eq!(ip.address, "10.0.0.2");

    let released = client
        .release_fixed_ip(&ctx, ReleaseFixedIp { instance_id })
        .await
        .expect_err("nothing to release");
    assert_eq!(released.target(), Some(&Target::topic(network::TOPIC)));
    assert_eq!(
        released.remote().map(|e| e.kind.as_str()),
        Some("NoSuchInstance")
    );

    let target = Target::topic(network::TOPIC);
    let unknown = rpc.call(&ctx, &target, "renumber", &json!({})).await;
    assert_eq!(remote_kind(unknown), Some(kinds::UNKNOWN_METHOD.into()));
    let garbled = rpc
        .call(
            &ctx,
            &target,
            network::methods::ALLOCATE_FIXED_IP,
            &json!({"x": 1}),
        )
        .await;
    assert_eq!(remote_kind(garbled), Some(kinds::INVALID_ARGUMENTS.into()));
}
