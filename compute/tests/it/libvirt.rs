//! The manager on real libvirt and QEMU (TCG), inside a network namespace of
//! the test's own with its own libvirtd: a guest built from the image that
//! deploy/images/build-test-image makes boots its kernel to a marker on the
//! console, a start with a bigger instance type gives the running domain its
//! vCPUs and memory, and terminate leaves no domain, file, chain or address
//! behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stratus_compute::driver::libvirt::LibvirtDriver;
use stratus_compute::host::libvirtd::PrivateLibvirtd;
use stratus_compute::instance_dir::domain_name;
use stratus_compute::xml::DomainType;
use stratus_host::RealHost;
use stratus_rpc::RequestContext;
use stratus_rpc::wire::compute::{ImageRef, StartInstance};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_test_support::Netns;
use stratus_test_support::fixtures::SSH_KEY as KEY;
use stratus_test_support::fixtures::flavor;

use crate::harness::{Harness, request};

/// Builds the test image into `dir` with the builder under deploy/images.
pub(crate) fn build_image(dir: &Path) -> ImageRef {
    stratus_test_support::images::build_test_image(dir);
    ImageRef {
        id: "ami-7e57000000000001".into(),
        disk: dir.join("disk.qcow2"),
        kernel: Some(dir.join("kernel")),
        ramdisk: Some(dir.join("ramdisk")),
        properties: Default::default(),
    }
}

/// qemu runs as its own user: it must be able to reach the state folder.
pub(crate) fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Terminates `id`: the conductor hears it, and `daemon` keeps no domain.
pub(crate) async fn terminate_leaves_no_domain(
    h: &Harness,
    daemon: &PrivateLibvirtd,
    id: stratus_rpc::wire::ids::InstanceId,
) {
    h.worker
        .manager
        .terminate_instance(&RequestContext::system(), id)
        .await;
    h.conductor
        .wait_for(id, InstanceState::Terminated)
        .await
        .expect("terminated reported");
    let left = daemon
        .virsh(&["list", "--all", "--name"])
        .expect("virsh list");
    assert!(left.trim().is_empty(), "domains left: {left}");
}

pub(crate) async fn console_shows(
    h: &Harness,
    id: &stratus_rpc::wire::ids::InstanceId,
    marker: &str,
) -> String {
    let log = h.instance_dir(id).join("console.log");
    for _ in 0..600 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The serial console reaches the file in pieces: a marker seen
        // before the rest of its line has come says nothing about that rest.
        let line_done = text
            .find(marker)
            .is_some_and(|at| text[at..].contains('\n'));
        if line_done {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{marker:?} never reached the console:\n{}",
        boot_lines(&std::fs::read_to_string(&log).unwrap_or_default())
    );
}

/// The console lines a failure is about, without the kernel's chatter that
/// would push them out of a CI log excerpt.
fn boot_lines(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    let tail = lines.len().saturating_sub(10);
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i >= tail || l.contains("STRATUS-BOOT") || l.contains("Linux version"))
        .map(|(_, l)| *l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_boots_on_libvirt_and_terminate_leaves_nothing() {
    let ns = Netns::new("lv");
    let daemon_dir = tempfile::tempdir().expect("tempdir");
    let daemon = PrivateLibvirtd::start(ns.name(), daemon_dir.path()).expect("private libvirtd");
    let driver = LibvirtDriver::connect(daemon.uri(), DomainType::Qemu)
        .await
        .expect("connect");
    let state = tempfile::tempdir().expect("tempdir");
    open_up(state.path());
    let h = Harness::start_with(
        state,
        Arc::new(driver),
        Arc::new(RealHost::in_netns(ns.name())),
    )
    .await;
    let image = build_image(h.images.path());
    let ctx = RequestContext::system();

    // A failure mid-build (the base image is missing) leaves nothing.
    let mut broken = request(&image);
    broken.image.id = "ami-7e57000000000002".into();
    broken.image.disk = h.images.path().join("missing.qcow2");
    assert!(h.worker.manager.run_instance(&ctx, &broken).await.is_none());
    let reason = h
        .conductor
        .wait_for(broken.instance_id, InstanceState::Error)
        .await
        .and_then(|u| u.reason)
        .expect("error with a reason");
    assert!(reason.contains("missing.qcow2"), "{reason}");
    assert!(!h.instance_dir(&broken.instance_id).exists());
    assert!(!h.has_address(&broken.instance_id).await);

    // A real guest boots its kernel, with its key injected into its disk.
    let mut req = request(&image);
    req.key_data = Some(KEY.to_owned());
    let id = req.instance_id;
    let timings = h
        .worker
        .manager
        .run_instance(&ctx, &req)
        .await
        .expect("the guest runs");
    h.conductor
        .wait_for(id, InstanceState::Running)
        .await
        .expect("running reported");
    let console = console_shows(&h, &id, "STRATUS-BOOT config drive").await;
    assert!(
        console.contains(&format!("\"uuid\":\"{id}\"")),
        "{}",
        boot_lines(&console)
    );
    assert!(
        console.contains("Linux version"),
        "{}",
        boot_lines(&console)
    );
    assert!(
        console.contains(&format!("STRATUS-BOOT authorized key: {KEY}")),
        "{}",
        boot_lines(&console)
    );
    let name = domain_name(&id);
    let running = daemon.virsh(&["list", "--name"]).expect("virsh list");
    assert!(running.contains(&name), "{running}");
    assert!(ns.iptables_save().contains("stratus-local"));
    eprintln!("build timings: {timings:?}");

    // Stop, start and reboot act on the real domain.
    let m = &h.worker.manager;
    m.stop_instance(&ctx, id).await.expect("stop");
    assert_eq!(
        daemon.virsh(&["domstate", &name]).expect("domstate").trim(),
        "shut off"
    );
    // Started with a bigger type (changed while it was stopped): the
    // running domain has the new vCPUs and memory.
    let bigger = StartInstance {
        instance_id: id,
        flavor: Some(flavor("m1.small", 2, 512, 1)),
        user_data: None,
    };
    m.start_instance(&ctx, &bigger).await.expect("start");
    assert_eq!(
        daemon.virsh(&["domstate", &name]).expect("domstate").trim(),
        "running"
    );
    let live = daemon.virsh(&["dumpxml", &name]).expect("dumpxml");
    for want in [
        "<memory unit='KiB'>524288</memory>",
        "<currentMemory unit='KiB'>524288</currentMemory>",
        ">2</vcpu>",
    ] {
        assert!(live.contains(want), "{want} not in the live XML:\n{live}");
    }
    // And back to the smaller type: libvirt takes a shrink as well.
    m.stop_instance(&ctx, id).await.expect("stop");
    let smaller = StartInstance {
        flavor: Some(req.flavor.clone()),
        ..bigger
    };
    m.start_instance(&ctx, &smaller).await.expect("start");
    let live = daemon.virsh(&["dumpxml", &name]).expect("dumpxml");
    for want in [
        "<memory unit='KiB'>262144</memory>",
        "<currentMemory unit='KiB'>262144</currentMemory>",
        ">1</vcpu>",
    ] {
        assert!(live.contains(want), "{want} not in the live XML:\n{live}");
    }
    m.reboot_instance(&ctx, id, true)
        .await
        .expect("hard reboot");
    assert_eq!(
        daemon.virsh(&["domstate", &name]).expect("domstate").trim(),
        "running"
    );
    let console = console_shows(&h, &id, "STRATUS-BOOT root disk mounted").await;
    assert!(
        console.contains("stratus test image"),
        "{}",
        boot_lines(&console)
    );

    terminate_leaves_no_domain(&h, &daemon, id).await;
    assert!(!h.instance_dir(&id).exists(), "files left");
    assert!(
        !ns.iptables_save().contains("stratus"),
        "chains left:\n{}",
        ns.iptables_save()
    );
    assert!(!h.has_address(&id).await, "address left");
    drop(h);
    drop(daemon);
}
