//! The compute manager on the fake driver: builds, failures, the rest of an
//! instance's life, recovery and power sync.

use std::sync::Arc;
use std::time::Duration;

use stratus_compute::driver::VirtDriver;
use stratus_compute::instance_dir::domain_name;
use stratus_compute::state::PowerState;
use stratus_compute::xml::Boot;
use stratus_host::firewall::render::{instance_chain, port_device};
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::compute::{
    InstanceRef, RebootInstance, RunInstance, SetHostEnabled, StartInstance,
};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::Limits;
use stratus_rpc::{RequestContext, RpcClient};

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

/// Whether the last report for `id` says `state` within 4 s.
async fn reaches(h: &Harness, id: InstanceId, state: InstanceState) -> bool {
    eventually(|| h.conductor.last(id).map(|u| u.state) == Some(state)).await
}

/// Polls `cond` for up to 4 s: casts arrive after the call that made them returns.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    stratus_test_support::eventually(Duration::from_secs(4), cond).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_instance_builds_a_running_guest_and_reports_each_step() {
    let h = Harness::start().await;
    let image = image(h.images.path());
    let req = request(&image);
    let id = req.instance_id;
    let timings = h.run(&req).await.expect("built");
    assert!(timings.total >= timings.libvirt);
    h.conductor
        .wait_for(id, InstanceState::Running)
        .await
        .expect("running reported");

    // The granted claim stands for `pending/networking`.
    assert_eq!(h.conductor.claims_of(id), 1);
    let states = h.conductor.states(id);
    assert_eq!(
        states,
        vec![
            (InstanceState::Pending, Some("spawning".into())),
            (InstanceState::Running, None),
        ]
    );
    let name = domain_name(&id);
    assert_eq!(
        h.fake().state(&name).await.expect("state"),
        Some(PowerState::Running)
    );
    let spec = h.fake().spec(&name).expect("spec");
    assert!(matches!(spec.boot, Boot::Kernel { .. }), "{:?}", spec.boot);
    assert_eq!(spec.nic.as_ref().map(|n| n.bridge.as_str()), Some("br100"));
    assert_eq!((spec.vcpus, spec.memory_mb), (1, 256));

    // The disk is a qcow2 overlay on the cached base, grown to the flavor's 1 GiB.
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&spec.disk)
        .output()
        .expect("qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 1u64 << 30);
    let backing = info["backing-filename"].as_str().expect("backing file");
    assert!(
        backing.ends_with("instances/_base/ami-0000000000000001"),
        "{backing}"
    );
    assert!(
        h.instance_dir(&id).join("kernel").exists() && h.instance_dir(&id).join("ramdisk").exists()
    );
    assert!(h.has_address(&id).await);
    assert!(h.worker.manager.host_report().await.running_instances == 1);
    // The metadata service was told who this instance is.
    assert!(eventually(|| !h.conductor.metadata.lock().expect("lock").is_empty()).await);
    let published = h.conductor.metadata.lock().expect("lock")[0].clone();
    assert_eq!(published.instance_id, id);
    assert_eq!(published.ami_id, "ami-0000000000000001");
    // The bridge was ensured through host commands.
    let calls: Vec<String> = h
        .host_commands
        .calls()
        .iter()
        .map(|c| c.join(" "))
        .collect();
    assert!(
        calls.iter().any(|c| c.contains("ip link show dev br100")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("iptables-restore")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_run_instance_finds_it_running_and_builds_nothing() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let manager = h.worker.manager.clone();
    let (c1, c2) = (ctx(), ctx());
    let (a, b) = tokio::join!(
        manager.run_instance(&c1, &req),
        manager.run_instance(&c2, &req)
    );
    assert_eq!(
        usize::from(a.is_some()) + usize::from(b.is_some()),
        1,
        "built twice"
    );
    assert_eq!(h.fake().list().await.expect("list").len(), 1);
    assert!(
        h.conductor
            .wait_for(req.instance_id, InstanceState::Running)
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_build_ends_in_error_with_a_reason_and_leaves_nothing() {
    let h = Harness::start().await;
    let mut req = request(&image(h.images.path()));
    req.image.disk = h.images.path().join("missing.qcow2");
    let id = req.instance_id;
    assert!(h.run(&req).await.is_none());
    let last = h
        .conductor
        .wait_for(id, InstanceState::Error)
        .await
        .expect("error reported");
    let reason = last.reason.unwrap_or_default();
    assert!(
        reason.contains("missing.qcow2"),
        "unhelpful reason: {reason}"
    );
    assert_nothing_left(&h, &req).await;

    // A hypervisor failure after the firewall is applied is cleaned up too,
    // and the instance handed back to the scheduler for another host.
    let req = request(&image(h.images.path()));
    h.fake().fail_spawn(&domain_name(&req.instance_id));
    assert!(h.run(&req).await.is_none());
    let scheduling = || {
        h.conductor
            .last(req.instance_id)
            .filter(|u| u.task_state.as_deref() == Some("scheduling"))
    };
    assert!(
        eventually(|| scheduling().is_some()).await,
        "not rescheduled"
    );
    let last = scheduling().expect("rescheduled");
    assert_eq!(last.state, InstanceState::Pending);
    let reason = last.reason.unwrap_or_default();
    assert!(reason.contains("injected failure"), "{reason}");
    assert_nothing_left(&h, &req).await;
    let back = handed_back(&h, req.instance_id).await;
    assert_eq!(back.placement.hosts_tried, [h.host()]);
    assert_eq!(back.placement.failures.len(), 1);
    // The host is in hosts_tried; the failure, which may reach the client,
    // does not name it.
    assert!(back.placement.failures[0].starts_with("hypervisor: "));
    assert!(!back.placement.failures[0].contains(&h.host().to_string()));
    assert!(back.placement.failures[0].contains("injected failure"));
    assert_eq!(back.placement.limits, None);
    // The base image stayed cached and whole.
    assert!(
        !h.state
            .path()
            .join("instances/_base/ami-0000000000000001.part")
            .exists()
    );
}

/// The instance as the worker handed it back to the scheduler.
async fn handed_back(h: &Harness, id: stratus_rpc::wire::ids::InstanceId) -> RunInstance {
    let found = || {
        h.scheduler
            .handed_back
            .lock()
            .expect("lock")
            .iter()
            .find(|r| r.instance_id == id)
            .cloned()
    };
    assert!(eventually(|| found().is_some()).await, "not handed back");
    found().expect("handed back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_over_the_schedulers_limits_is_refused_and_handed_back() {
    let h = Harness::start().await;
    let img = image(h.images.path());
    let limits = Limits {
        vcpus: 4,
        memory_mb: 512,
        disk_gb: 10,
    };
    let mut first = request(&img);
    first.placement.limits = Some(limits);
    first.placement.hosts_tried = vec![h.host()];
    h.run(&first).await.expect("first fits");

    // 256 + 256 MiB fit in 512; a third does not.
    let mut second = request(&img);
    second.placement.limits = Some(limits);
    h.run(&second).await.expect("second fits");
    let mut third = request(&img);
    third.placement.limits = Some(limits);
    assert!(h.run(&third).await.is_none());
    let back = handed_back(&h, third.instance_id).await;
    assert!(
        back.placement.failures[0].contains("512 of 512 in use"),
        "{:?}",
        back.placement.failures
    );
    assert!(!h.instance_dir(&third.instance_id).exists());
    assert!(!h.has_address(&third.instance_id).await);
    assert_eq!(h.fake_state(third.instance_id).await, None);
    let report = h.worker.manager.host_report().await;
    assert_eq!((report.running_instances, report.memory_mb_used), (2, 512));
    // Nothing was built for it: no address was ever asked for.
    assert!(
        h.conductor
            .states(third.instance_id)
            .iter()
            .all(|(_, task)| task.as_deref() == Some("scheduling"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_host_says_so_in_its_reports_and_stays_disabled_after_a_restart() {
    let h = Harness::start().await;
    let report = client(&h)
        .set_host_enabled(
            &ctx(),
            &h.host(),
            &SetHostEnabled {
                enabled: false,
                reason: Some("disk swap".into()),
            },
        )
        .await
        .expect("disabled");
    assert!(!report.enabled);
    assert_eq!(report.disabled_reason.as_deref(), Some("disk swap"));
    // The schedulers hear at once (the cast is handled a moment after the
    // call returns), not at the next periodic report.
    let heard = || {
        h.scheduler
            .reports
            .lock()
            .expect("lock")
            .iter()
            .any(|r| !r.enabled)
    };
    assert!(eventually(heard).await, "no report said disabled");

    let h = h.restart().await;
    let report = h.worker.manager.host_report().await;
    assert!(!report.enabled, "the switch survives a restart");
    assert_eq!(report.disabled_reason.as_deref(), Some("disk swap"));
    let report = client(&h)
        .set_host_enabled(
            &ctx(),
            &h.host(),
            &SetHostEnabled {
                enabled: true,
                reason: None,
            },
        )
        .await
        .expect("enabled");
    assert!(report.enabled);
    assert_eq!(report.disabled_reason, None);
}

async fn assert_nothing_left(h: &Harness, req: &stratus_rpc::wire::compute::RunInstance) {
    let id = req.instance_id;
    assert_eq!(h.fake_state(id).await, None, "domain left");
    assert!(!h.instance_dir(&id).exists(), "instance folder left");
    assert!(!h.has_address(&id).await, "fixed IP left allocated");
    assert_eq!(h.worker.manager.host_report().await.running_instances, 0);
    let firewall = h.worker.manager.firewall().state().await;
    assert!(
        !firewall.instances.contains_key(&id),
        "firewall chains left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_leaves_nothing_and_can_be_repeated() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let id = req.instance_id;
    let compute = client(&h);
    let host = "node1".parse().expect("host");
    compute
        .run_instance(&ctx(), &host, &req)
        .await
        .expect("cast");
    assert!(reaches(&h, id, InstanceState::Running).await);
    compute
        .terminate_instance(&ctx(), &host, InstanceRef { instance_id: id })
        .await
        .expect("cast");
    assert!(reaches(&h, id, InstanceState::Terminated).await);
    assert_nothing_left(&h, &req).await;
    h.worker.manager.terminate_instance(&ctx(), id).await;
    assert!(
        h.conductor
            .wait_for(id, InstanceState::Terminated)
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_with_the_hypervisor_away_keeps_the_guest_its_disk_and_address() {
    let h = Harness::start().await;
    let req = h.built().await;
    let id = req.instance_id;
    let m = h.worker.manager.clone();
    h.fake().fail_destroy(&domain_name(&id));
    m.terminate_instance(&ctx(), id).await;
    let failed = |u: &stratus_rpc::wire::conductor::InstanceUpdate| {
        u.state == InstanceState::Running
            && u.reason.as_deref().is_some_and(|r| {
                r.starts_with("terminate failed, try again:") && r.contains("hypervisor is away")
            })
    };
    assert!(
        eventually(|| h.conductor.last(id).is_some_and(|u| failed(&u))).await,
        "{:?}",
        h.conductor.last(id)
    );
    assert!(
        h.has_address(&id).await,
        "the running guest's address was freed"
    );
    assert!(
        h.instance_dir(&id).exists(),
        "the guest's files were removed"
    );
    assert!(h.fake().spec(&domain_name(&id)).is_some());
    // Once the hypervisor answers, terminate again finishes the job.
    m.terminate_instance(&ctx(), id).await;
    assert!(reaches(&h, id, InstanceState::Terminated).await);
    assert_nothing_left(&h, &req).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_duplicate_copy_keeps_the_address_the_other_copy_uses() {
    let h = Harness::start().await;
    let req = h.built().await;
    let id = req.instance_id;
    let m = h.worker.manager.clone();
    assert!(reaches(&h, id, InstanceState::Running).await);
    let reports = h.conductor.states(id).len();
    m.remove_copy(&ctx(), id).await;
    assert_eq!(h.fake_state(id).await, None);
    assert!(!h.instance_dir(&id).exists(), "the copy's files stayed");
    assert!(h.has_address(&id).await, "the shared address was released");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.conductor.states(id).len(), reports, "the copy reported");
    assert_eq!(m.host_report().await.running_instances, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_reboot_and_console_output() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let id = req.instance_id;
    let name = domain_name(&id);
    let m = h.worker.manager.clone();
    m.run_instance(&ctx(), &req).await.expect("built");

    m.stop_instance(&ctx(), id).await.expect("stop");
    assert_eq!(
        h.fake().state(&name).await.expect("state"),
        Some(PowerState::Shutoff)
    );
    assert!(
        h.conductor
            .wait_for(id, InstanceState::Stopped)
            .await
            .is_some()
    );
    m.stop_instance(&ctx(), id)
        .await
        .expect("stopping a stopped instance is a no-op");
    let start = StartInstance {
        instance_id: id,
        flavor: None,
        user_data: None,
    };
    m.start_instance(&ctx(), &start).await.expect("start");
    assert_eq!(
        h.fake().state(&name).await.expect("state"),
        Some(PowerState::Running)
    );

    let compute = client(&h);
    let host = "node1".parse().expect("host");
    compute
        .reboot_instance(
            &ctx(),
            &host,
            RebootInstance {
                instance_id: id,
                hard: true,
            },
        )
        .await
        .expect("cast");
    m.stop_instance(&ctx(), id).await.expect("stop");
    let err = m
        .reboot_instance(&ctx(), id, false)
        .await
        .expect_err("cannot reboot a stopped guest");
    assert!(err.to_string().contains("Reboot"), "{err}");

    // The console tail is capped at console_max_bytes (1024 here).
    let log = h.instance_dir(&id).join("console.log");
    let mut text = "early line\n".repeat(200);
    text.push_str("LAST LINE\n");
    std::fs::write(&log, &text).expect("console");
    let out = compute
        .get_console_output(&ctx(), &host, InstanceRef { instance_id: id })
        .await
        .expect("console");
    assert_eq!(out.len(), 1024);
    assert!(out.ends_with("LAST LINE\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_sync_follows_the_hypervisor_and_never_acts_on_unknown_states() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let id = req.instance_id;
    let name = domain_name(&id);
    h.run(&req).await.expect("built");
    h.conductor
        .wait_for(id, InstanceState::Running)
        .await
        .expect("running");

    h.fake().set_state(&name, PowerState::NoState);
    h.worker.manager.sync_power_states(&ctx()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.conductor.last(id).map(|u| u.state),
        Some(InstanceState::Running)
    );
    assert_eq!(
        h.fake().state(&name).await.expect("state"),
        Some(PowerState::NoState),
        "sync touched the guest"
    );

    h.fake().set_state(&name, PowerState::Shutoff);
    h.worker.manager.sync_power_states(&ctx()).await;
    assert!(
        h.conductor
            .wait_for(id, InstanceState::Stopped)
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_applies_its_running_guests_filters_again() {
    let h = Harness::start().await;
    let running = request(&image(h.images.path()));
    h.run(&running).await.expect("built");
    let Harness {
        state, fake_driver, ..
    } = h;
    // A host reboot or a crash may have emptied the kernel's tables; the
    // new worker's host has seen nothing yet.
    let h = Harness::start_in(state, fake_driver.expect("fake")).await;
    let applied = h.host_commands.stdins();
    let port = port_device(&running.instance_id);
    assert!(
        applied
            .iter()
            .any(|s| s.starts_with("table bridge stratus") && s.contains(&port)),
        "the running guest's port was not pinned again: {applied:?}"
    );
    assert!(
        applied
            .iter()
            .any(|s| s.contains(&instance_chain(&running.instance_id))),
        "the running guest's chains were not applied again: {applied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_its_capacity_on_the_scheduler_fanout() {
    let h = Harness::start().await;
    assert!(eventually(|| !h.scheduler.reports.lock().expect("lock").is_empty()).await);
    let report = h.scheduler.reports.lock().expect("lock")[0].clone();
    assert_eq!(report.host.as_str(), "node1");
    assert_eq!(
        (report.vcpus, report.memory_mb, report.disk_gb),
        (4, 4096, 40)
    );
    assert_eq!(
        (
            report.hypervisor_type.as_str(),
            report.availability_zone.as_str()
        ),
        ("fake", "nova")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_network_controller_fails_the_build_within_the_call_timeout() {
    let mut h = Harness::start().await;
    h.stop_network().await;
    let req = request(&image(h.images.path()));
    let started = std::time::Instant::now();
    let manager = h.worker.manager.clone();
    let build = {
        let req = req.clone();
        tokio::spawn(async move { manager.run_instance(&ctx(), &req).await })
    };
    // The harness's calls wait 5 s: the user hears within that (and a
    // little), while the clean-up's own call to the controller still waits.
    let last = h
        .conductor
        .wait_for_within(
            req.instance_id,
            InstanceState::Error,
            Duration::from_secs(7),
        )
        .await
        .expect("error reported within the call timeout");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    assert!(build.await.expect("build task").is_none());
    let reason = last.reason.unwrap_or_default();
    assert!(reason.starts_with("network: "), "{reason}");
    // No guest was started without an address.
    assert_eq!(h.fake_state(req.instance_id).await, None);
    assert!(!h.instance_dir(&req.instance_id).exists());
}
