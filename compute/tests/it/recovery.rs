//! Start-up recovery of builds a worker restart cut short, at every step
//! of the journal: a guest that had started is adopted, any other build is
//! resumed from its saved request at once (claimed again first), and built
//! once; an older folder with no request is cleaned up and reported.

use stratus_compute::driver::VirtDriver;
use stratus_compute::instance_dir::{BuildStep, InstanceDir, InstanceRecord, domain_name};
use stratus_compute::state::PowerState;
use stratus_compute::xml::{Boot, DomainSpec, DomainType};
use stratus_host::firewall::render::{InstanceFilter, port_device};
use stratus_rpc::wire::compute::{ImageRef, RunInstance};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::network::AllocateFixedIp;

use crate::harness::{Harness, image, request};

/// What a worker killed at `step` of a build leaves: the journal (with the
/// request unless `older_layout`), and whatever the steps before it made.
async fn killed_at(
    h: &Harness,
    image: &ImageRef,
    step: BuildStep,
    older_layout: bool,
) -> RunInstance {
    let req = request(image);
    let id = req.instance_id;
    let dir = h.worker.manager.dir(&id);
    std::fs::create_dir_all(dir.root()).expect("dir");
    if !older_layout {
        dir.write_request(&req).await.expect("request");
    }
    let record = InstanceRecord {
        instance_id: id,
        project_id: req.project_id.clone(),
        flavor: req.flavor.clone(),
        step,
        claimed_at: None,
    };
    dir.write_record(&record).await.expect("record");
    if step >= BuildStep::Network {
        h.network
            .allocate(&AllocateFixedIp {
                instance_id: id,
                project_id: req.project_id.clone(),
                mac: "02:16:3e:00:00:09".parse().expect("mac"),
                deadline_ms: None,
                requested_address: None,
            })
            .expect("allocate");
    }
    if step >= BuildStep::Image {
        std::fs::write(dir.disk(), b"half an overlay").expect("disk");
    }
    if step >= BuildStep::Firewall {
        let filter = InstanceFilter {
            address: "10.0.0.250".parse().expect("ip"),
            mac: "02:16:3e:00:00:09".parse().expect("mac"),
            device: port_device(&id),
            dhcp_server: "10.0.0.2".parse().expect("ip"),
            groups: vec![],
            source_dest_check: true,
        };
        let firewall = h.worker.manager.firewall();
        firewall.add_instance(id, filter).await.expect("filters");
    }
    if step == BuildStep::Spawning {
        // Defined, not yet running.
        let spec = DomainSpec {
            name: domain_name(&id),
            uuid: id.0,
            domain_type: DomainType::Qemu,
            memory_mb: 256,
            vcpus: 1,
            boot: Boot::Disk,
            disk: dir.disk(),
            config_drive: None,
            nic: None,
            console_log: dir.console_log(),
        };
        h.fake().spawn(&spec).await.expect("spawn");
        h.fake().set_state(&spec.name, PowerState::Shutoff);
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_killed_at_any_step_resumes_at_once_and_runs_once() {
    for step in [
        BuildStep::Recorded,
        BuildStep::Claimed,
        BuildStep::Network,
        BuildStep::Image,
        BuildStep::Disk,
        BuildStep::Firewall,
        BuildStep::Spawning,
    ] {
        let h = Harness::start().await;
        let req = killed_at(&h, &image(h.images.path()), step, false).await;
        let id = req.instance_id;
        let name = domain_name(&id);
        let spawned_before = h.fake().spawn_count(&name);
        let claims_before = h.conductor.claims_of(id);

        // No request comes back: the restart alone finishes the build.
        let h = h.restart().await;
        let running = h.conductor.wait_for(id, InstanceState::Running).await;
        assert!(
            running.is_some(),
            "killed at {step:?}: not running after the restart: {:?}",
            h.conductor.states(id)
        );
        assert_eq!(
            h.fake_state(id).await,
            Some(PowerState::Running),
            "{step:?}"
        );
        // Killed between defining and starting the domain: the domain is
        // complete, so recovery starts it (no claim, no second definition);
        // from any earlier step the build runs again, claimed first.
        let again = usize::from(step != BuildStep::Spawning);
        assert_eq!(
            h.conductor.claims_of(id) - claims_before,
            again,
            "{step:?}: claims"
        );
        assert_eq!(
            h.fake().spawn_count(&name) - spawned_before,
            again,
            "{step:?}: spawns"
        );
        assert!(h.has_address(&id).await, "{step:?}: address");
        let record = InstanceDir::read_record(h.instance_dir(&id).as_path())
            .await
            .expect("record");
        assert_eq!(record.step, BuildStep::Built, "{step:?}");

        // The request the broker gives back later changes nothing.
        assert!(h.run(&req).await.is_none(), "{step:?}: built twice");
        assert_eq!(
            h.fake().spawn_count(&name) - spawned_before,
            again,
            "{step:?}: spawns"
        );
        assert_eq!(
            h.conductor.claims_of(id) - claims_before,
            again,
            "{step:?}: claims"
        );
        assert_eq!(
            h.conductor.last(id).map(|u| u.state),
            Some(InstanceState::Running)
        );
        let states = h.conductor.states(id);
        assert!(
            states.iter().all(|(s, _)| *s != InstanceState::Error),
            "{step:?}: {states:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_build_the_conductor_refuses_is_removed_and_keeps_the_address() {
    let h = Harness::start().await;
    let req = killed_at(&h, &image(h.images.path()), BuildStep::Firewall, false).await;
    let id = req.instance_id;
    // Another host holds it now.
    h.conductor.refuse(id, false);
    let h = h.restart().await;
    let dir = h.instance_dir(&id);
    assert!(
        stratus_test_support::eventually(std::time::Duration::from_secs(4), || !dir.exists()).await,
        "the refused build's folder stays"
    );
    assert_eq!(h.fake().spawn_count(&domain_name(&id)), 0);
    assert_eq!(h.fake_state(id).await, None);
    assert!(
        h.has_address(&id).await,
        "the other host's address was released"
    );
    let firewall = h.worker.manager.firewall().state().await;
    assert!(!firewall.instances.contains_key(&id), "its filters stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_started_before_the_worker_died_is_adopted_not_destroyed() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    h.run(&req).await.expect("built");
    // Killed between the guest's start and the record that says so: the
    // domain runs, the record still reads unfinished.
    let dir = h.worker.manager.dir(&req.instance_id);
    let mut record = InstanceDir::read_record(dir.root()).await.expect("record");
    record.step = BuildStep::Spawning;
    dir.write_record(&record).await.expect("record");
    let name = domain_name(&req.instance_id);
    let reports = h.conductor.states(req.instance_id).len();

    let h = h.restart().await;
    assert!(
        h.conductor
            .wait_for(req.instance_id, InstanceState::Running)
            .await
            .is_some(),
        "the adopted guest was not reported running: {:?}",
        h.conductor.states(req.instance_id)
    );
    assert_eq!(
        h.conductor.states(req.instance_id)[reports..],
        [(InstanceState::Running, None)],
        "reports after the restart"
    );
    assert_eq!(h.fake().spawn_count(&name), 1, "spawned again");
    assert_eq!(h.conductor.claims_of(req.instance_id), 1, "claimed again");
    assert!(h.has_address(&req.instance_id).await, "address released");
    let firewall = h.worker.manager.firewall().state().await;
    assert!(
        firewall.instances.contains_key(&req.instance_id),
        "the adopted guest's filters are gone"
    );
    let record = InstanceDir::read_record(dir.root()).await.expect("record");
    assert!(record.built(), "the adoption was not recorded");
    assert_eq!(h.worker.manager.host_report().await.running_instances, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_running_guests_and_cleans_builds_of_the_older_layout() {
    let h = Harness::start().await;
    let image = image(h.images.path());
    let running = request(&image);
    h.run(&running).await.expect("built");
    // A folder of the layout before request.json: nothing to resume from.
    let half = killed_at(&h, &image, BuildStep::Firewall, true).await;
    let half_dir = h.worker.manager.dir(&half.instance_id);
    // And an image fetch cut short beside the whole base image.
    let base = half_dir.root().parent().expect("instances").join("_base");
    std::fs::write(base.join("ami-half.part"), b"half an image").expect("part");
    let cached: Vec<_> = std::fs::read_dir(&base)
        .expect("_base")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(!cached.is_empty(), "the first build cached its image");

    // The worker restarts over the same state folder and hypervisor.
    let h = h.restart().await;
    assert!(
        h.conductor
            .wait_for(running.instance_id, InstanceState::Running)
            .await
            .is_some()
    );
    assert_eq!(
        h.fake_state(running.instance_id).await,
        Some(PowerState::Running)
    );
    assert_eq!(h.worker.manager.host_report().await.running_instances, 1);
    // The saved filters came back for the running guest only; its port and
    // chains being applied again is a_restarted_worker_applies_….
    let firewall = h.worker.manager.firewall().state().await;
    assert_eq!(
        firewall.instances.keys().collect::<Vec<_>>(),
        vec![&running.instance_id],
        "the firewall state after a restart"
    );
    let applied = h.host_commands.stdins();
    assert!(
        !applied
            .iter()
            .any(|s| s.contains(&port_device(&half.instance_id))),
        "the half build's port came back: {applied:?}"
    );
    // Cleaned and reported at once.
    assert!(!half_dir.root().exists());
    assert!(
        !h.has_address(&half.instance_id).await,
        "half-built instance kept its address"
    );
    let error = h
        .conductor
        .wait_for(half.instance_id, InstanceState::Error)
        .await
        .expect("error reported");
    assert!(
        error
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("its request was not saved")),
        "{:?}",
        error.reason
    );
    let mut left: Vec<_> = std::fs::read_dir(&base)
        .expect("_base")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    left.sort();
    let mut cached = cached;
    cached.sort();
    assert_eq!(left, cached, "the half fetch is gone, the cache kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_the_restart_cut_short_is_finished_and_reported() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let id = req.instance_id;
    h.run_until_running(&req, "built").await;
    // Killed after the terminate was recorded, before the domain went.
    let dir = h.worker.manager.dir(&id);
    let mut record = InstanceDir::read_record(dir.root()).await.expect("record");
    record.step = BuildStep::Terminating;
    dir.write_record(&record).await.expect("record");

    let h = h.restart().await;
    h.conductor
        .wait_for(id, InstanceState::Terminated)
        .await
        .expect("terminated reported");
    assert_eq!(h.fake_state(id).await, None);
    assert!(!h.instance_dir(&id).exists());
    assert!(!h.has_address(&id).await, "the address stays held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_the_restart_cut_short_is_cleaned_up_not_rebuilt() {
    let h = Harness::start().await;
    let req = killed_at(&h, &image(h.images.path()), BuildStep::Firewall, false).await;
    let id = req.instance_id;
    let dir = h.worker.manager.dir(&id);
    let mut record = InstanceDir::read_record(dir.root()).await.expect("record");
    record.step = BuildStep::Failed;
    dir.write_record(&record).await.expect("record");

    let h = h.restart().await;
    let error = h
        .conductor
        .wait_for(id, InstanceState::Error)
        .await
        .expect("error reported");
    assert!(error.reason.is_some());
    assert_eq!(h.fake().spawn_count(&domain_name(&id)), 0, "rebuilt");
    assert!(!h.instance_dir(&id).exists());
    assert!(!h.has_address(&id).await, "the address stays held");
}
