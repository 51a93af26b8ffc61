//! A stopped instance started with another instance type or user data
//! (changed by ModifyInstanceAttribute while it was stopped), on the fake
//! driver and over the compute topic: resized before it powers on, counted at
//! its new size, kept across a restart, and refused, stopped and unchanged,
//! when the host has no room for it; its config drive built again with the
//! new user data.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use stratus_compute::instance_dir::{InstanceDir, domain_name};
use stratus_compute::state::PowerState;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::compute::{InstanceRef, RunInstance, StartInstance};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::scheduler::Limits;
use stratus_rpc::{RequestContext, RpcClient, RpcError};
use stratus_test_support::command;
use stratus_test_support::fixtures::flavor;

use crate::harness::{Harness, image, request};

fn ctx() -> RequestContext {
    RequestContext::system()
}

fn client(h: &Harness) -> ComputeClient {
    ComputeClient::new(RpcClient::new(
        Arc::new(h.bus.clone()),
        Duration::from_secs(5),
    ))
}

/// A built m1.tiny (256 MiB) placed under `limits`, then stopped.
async fn stopped(h: &Harness, limits: Limits) -> RunInstance {
    let mut req = request(&image(h.images.path()));
    req.placement.limits = Some(limits);
    h.run(&req).await.expect("built");
    stop(h, &req).await;
    req
}

/// Stops `req` over the compute topic, and waits until it is.
async fn stop(h: &Harness, req: &RunInstance) {
    let id = req.instance_id;
    client(h)
        .stop_instance(&ctx(), &h.host(), InstanceRef { instance_id: id })
        .await
        .expect("stop cast");
    for _ in 0..200 {
        if h.fake_state(id).await == Some(PowerState::Shutoff) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never stopped");
}

/// Whether `cond` holds within 4 s: reports are casts, which arrive after
/// the reply to the call that made them.
async fn soon(cond: impl Fn() -> bool) -> bool {
    stratus_test_support::eventually(Duration::from_secs(4), cond).await
}

/// Starts `req` over the compute topic with `flavor`.
async fn start(
    h: &Harness,
    req: &RunInstance,
    flavor: Option<stratus_rpc::wire::compute::Flavor>,
) -> Result<(), RpcError> {
    let request = StartInstance {
        instance_id: req.instance_id,
        flavor,
        user_data: None,
    };
    client(h).start_instance(&ctx(), &h.host(), request).await
}

/// Starts `req` over the compute topic with `user_data` (base64, or none).
async fn start_with_user_data(h: &Harness, req: &RunInstance, user_data: Option<String>) {
    let request = StartInstance {
        instance_id: req.instance_id,
        flavor: Some(req.flavor.clone()),
        user_data: Some(user_data),
    };
    client(h)
        .start_instance(&ctx(), &h.host(), request)
        .await
        .expect("started");
}

/// The paths on `iso` and the bytes of its `/openstack/latest/user_data`.
fn on_drive(iso: &Path) -> (String, Vec<u8>) {
    let isoinfo = |args: &[&str]| {
        command::run(
            Command::new("isoinfo").arg("-i").arg(iso).args(args),
            "genisoimage",
        )
    };
    let paths = String::from_utf8_lossy(&isoinfo(&["-R", "-f"])).into_owned();
    (paths, isoinfo(&["-R", "-x", "/openstack/latest/user_data"]))
}

const ROOMY: Limits = Limits {
    vcpus: 4,
    memory_mb: 4096,
    disk_gb: 10,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_type_reaches_the_guest_at_start_and_outlives_a_restart() {
    let h = Harness::start().await;
    let req = stopped(&h, ROOMY).await;
    let id = req.instance_id;
    let name = domain_name(&id);

    // m1.small asks for a 20 GiB root disk: the disk stays as it was.
    start(&h, &req, Some(flavor("m1.small", 2, 2048, 20)))
        .await
        .expect("started");
    assert_eq!(h.fake_state(id).await, Some(PowerState::Running));
    let spec = h.fake().spec(&name).expect("domain");
    assert_eq!((spec.vcpus, spec.memory_mb), (2, 2048));
    let console =
        std::fs::read_to_string(h.instance_dir(&id).join("console.log")).expect("console");
    assert!(
        console.contains("started with 2 vCPUs and 2048 MiB"),
        "{console}"
    );
    let running = || h.conductor.last(id).map(|u| u.state) == Some(InstanceState::Running);
    assert!(soon(running).await, "running not reported");
    let record = InstanceDir::read_record(&h.instance_dir(&id))
        .await
        .expect("record");
    assert_eq!(record.flavor, flavor("m1.small", 2, 2048, 1));
    // Counted at its new size, and the schedulers told at once.
    let report = h.worker.manager.host_report().await;
    assert_eq!(
        (
            report.vcpus_used,
            report.memory_mb_used,
            report.disk_gb_used
        ),
        (2, 2048, 1)
    );
    let told = || h.scheduler.reports.lock().expect("lock").clone();
    let new_size = || told().iter().any(|r| r.memory_mb_used == 2048);
    assert!(soon(new_size).await, "no new size reported: {:?}", told());

    // The launch delivered again finds it here, at its new size.
    assert!(h.run(&req).await.is_none(), "built again");
    let report = h.worker.manager.host_report().await;
    assert_eq!(report.memory_mb_used, 2048);

    // A restart reads the new type back; a later start naming the same
    // type (or none, from an older api) leaves the domain as it is.
    let h = h.restart().await;
    let report = h.worker.manager.host_report().await;
    assert_eq!((report.vcpus_used, report.memory_mb_used), (2, 2048));
    stop(&h, &req).await;
    start(&h, &req, None).await.expect("started");
    let spec = h.fake().spec(&name).expect("domain");
    assert_eq!((spec.vcpus, spec.memory_mb), (2, 2048));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_type_the_host_has_no_room_for_is_refused_and_the_guest_stays_stopped() {
    let h = Harness::start().await;
    let limits = Limits {
        memory_mb: 1024,
        ..ROOMY
    };
    let mut other = request(&image(h.images.path()));
    other.placement.limits = Some(limits);
    h.run(&other).await.expect("the other one built");
    let req = stopped(&h, limits).await;
    let id = req.instance_id;
    let name = domain_name(&id);

    // 256 MiB in use by the other: 1024 more do not fit in 1024.
    let refused = start(&h, &req, Some(flavor("m1.small", 1, 1024, 1))).await;
    match refused {
        Err(RpcError::Remote { source, .. }) => {
            assert_eq!(source.kind, "InsufficientInstanceCapacity", "{source:?}");
            assert!(source.message.contains("256 of 1024 in use"), "{source:?}");
        }
        other => panic!("not refused for room: {other:?}"),
    }
    assert_eq!(h.fake_state(id).await, Some(PowerState::Shutoff));
    let spec = h.fake().spec(&name).expect("domain");
    assert_eq!((spec.vcpus, spec.memory_mb), (1, 256));
    let record = InstanceDir::read_record(&h.instance_dir(&id))
        .await
        .expect("record");
    assert_eq!(record.flavor.name, "m1.tiny");
    assert_eq!(h.worker.manager.host_report().await.memory_mb_used, 512);
    // Told the conductor too, in case the reply is lost.
    let said = || {
        h.conductor.last(id).is_some_and(|u| {
            u.state == InstanceState::Stopped && u.reason.is_some_and(|r| r.contains("no room"))
        })
    };
    assert!(soon(said).await, "{:?}", h.conductor.last(id));

    // 768 MiB do fit beside the other's 256.
    start(&h, &req, Some(flavor("m1.small", 1, 768, 1)))
        .await
        .expect("started");
    assert_eq!(h.fake_state(id).await, Some(PowerState::Running));
    assert_eq!(h.fake().spec(&name).expect("domain").memory_mb, 768);
    assert_eq!(h.worker.manager.host_report().await.memory_mb_used, 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_user_data_is_on_the_config_drive_the_guest_starts_with() {
    let h = Harness::start().await;
    let mut req = request(&image(h.images.path()));
    req.user_data = Some(BASE64.encode(b"old"));
    h.run(&req).await.expect("built");
    stop(&h, &req).await;
    let drive = h.instance_dir(&req.instance_id).join("disk.config");
    assert_eq!(on_drive(&drive).1, b"old");

    let new = b"#!/bin/sh\necho new\n";
    start_with_user_data(&h, &req, Some(BASE64.encode(new))).await;
    assert_eq!(
        h.fake_state(req.instance_id).await,
        Some(PowerState::Running)
    );
    assert_eq!(on_drive(&drive).1, new);
    // The address on the drive is still the one the instance holds.
    assert!(h.has_address(&req.instance_id).await);
    let saved = InstanceDir::read_request(&h.instance_dir(&req.instance_id))
        .await
        .expect("request");
    assert_eq!(saved.user_data, Some(BASE64.encode(new)));

    // Removed: the drive has none.
    stop(&h, &req).await;
    start_with_user_data(&h, &req, None).await;
    let (paths, _) = on_drive(&drive);
    assert!(paths.contains("meta_data.json"), "{paths}");
    assert!(!paths.contains("user_data"), "{paths}");
}
