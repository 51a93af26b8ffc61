//! An instance's source/destination check, turned off and on by the api's
//! call, kept by the worker through a stop and start and a restart, and
//! taken from the request when an instance is built.

use std::sync::Arc;
use std::time::Duration;

use stratus_host::firewall::render::port_device;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::compute::{SourceDestCheck, StartInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{RequestContext, RpcClient, RpcError};

use crate::harness::{Harness, image, request};

fn client(h: &Harness) -> ComputeClient {
    ComputeClient::new(RpcClient::new(
        Arc::new(h.bus.clone()),
        Duration::from_secs(5),
    ))
}

async fn checked(h: &Harness, id: InstanceId) -> bool {
    h.worker.manager.firewall().state().await.instances[&id].source_dest_check
}

/// The last bridge table the worker loaded.
fn bridge_table(h: &Harness) -> String {
    let applied = h.host_commands.stdins();
    let mut tables = applied.iter().rev().filter(|s| s.contains("table bridge"));
    tables.next().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_goes_off_by_call_and_outlives_a_stop_start_and_a_restart() {
    let h = Harness::start().await;
    let built = h.built().await;
    let id = built.instance_id;
    assert!(checked(&h, id).await, "built checked, as launched");
    let ctx = RequestContext::system();
    let off = SourceDestCheck {
        instance_id: id,
        checked: false,
    };
    client(&h)
        .set_source_dest_check(&ctx, &h.host(), &off)
        .await
        .expect("turned off");
    assert!(!checked(&h, id).await);
    let unchecked = format!(
        "set unchecked {{\n\t\ttype ifname\n\t\telements = {{ \"{}\" }}",
        port_device(&id)
    );
    assert!(
        bridge_table(&h).contains(&unchecked),
        "{}",
        bridge_table(&h)
    );

    h.worker
        .manager
        .stop_instance(&ctx, id)
        .await
        .expect("stop");
    h.worker
        .manager
        .start_instance(
            &ctx,
            &StartInstance {
                instance_id: id,
                flavor: None,
                user_data: None,
            },
        )
        .await
        .expect("start");
    assert!(!checked(&h, id).await, "a stop and start kept it");
    let h = h.restart().await;
    assert!(!checked(&h, id).await, "a restart kept it");
    assert!(
        bridge_table(&h).contains(&unchecked),
        "{}",
        bridge_table(&h)
    );

    let on = SourceDestCheck {
        checked: true,
        ..off
    };
    client(&h)
        .set_source_dest_check(&ctx, &h.host(), &on)
        .await
        .expect("turned on");
    assert!(checked(&h, id).await);
    assert!(
        !bridge_table(&h).contains(&unchecked),
        "{}",
        bridge_table(&h)
    );

    // An instance the host has no filters for: not found.
    let unknown = SourceDestCheck {
        instance_id: InstanceId::new(),
        ..off
    };
    let refused = client(&h)
        .set_source_dest_check(&ctx, &h.host(), &unknown)
        .await
        .expect_err("unknown instance");
    assert!(
        matches!(&refused, RpcError::Remote { source, .. } if source.kind == "InstanceNotFound"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_takes_the_check_from_its_request() {
    let h = Harness::start().await;
    let mut unchecked = request(&image(h.images.path()));
    unchecked.source_dest_check = false;
    h.run(&unchecked).await.expect("built");
    assert!(!checked(&h, unchecked.instance_id).await);
}
