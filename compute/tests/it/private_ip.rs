//! RunInstances' PrivateIpAddress on the worker: the address asked for is
//! what the worker asks the network controller for, and a refusal is the
//! instance's build failure reason, with nothing left behind.

use std::net::Ipv4Addr;

use stratus_rpc::wire::conductor::InstanceState;

use crate::harness::{Harness, image, request};

#[tokio::test]
async fn the_requested_address_is_asked_for_and_a_refusal_is_the_reason() {
    let h = Harness::start().await;
    let img = image(h.images.path());
    let wanted = Ipv4Addr::new(10, 0, 0, 77);
    let mut first = request(&img);
    first.private_ip_address = Some(wanted);
    h.run_until_running(&first, "the address is free").await;
    assert_eq!(h.network.address_of(&first.instance_id), Some(wanted));

    // Without one, the controller picks.
    let any = request(&img);
    h.run_until_running(&any, "any address").await;
    assert_ne!(h.network.address_of(&any.instance_id), Some(wanted));

    let mut second = request(&img);
    second.private_ip_address = Some(wanted);
    assert!(h.run(&second).await.is_none(), "built on a taken address");
    let failed = h
        .conductor
        .wait_for(second.instance_id, InstanceState::Error)
        .await
        .expect("in error");
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("10.0.0.77") && reason.contains("already in use"),
        "{reason}"
    );
    assert!(!h.network.has_address(&second.instance_id));
    assert!(!h.instance_dir(&second.instance_id).exists());
    assert_eq!(h.fake_state(second.instance_id).await, None);
}
