//! Faults the compute worker rides out without losing anything (issue 9):
//! libvirtd restarting, or crashing, under a running guest; and the disk
//! of the instance folder filling up during an image fetch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_compute::driver::VirtDriver;
use stratus_compute::driver::libvirt::LibvirtDriver;
use stratus_compute::host::libvirtd::{PrivateLibvirtd, Stop};
use stratus_compute::instance_dir::domain_name;
use stratus_compute::state::PowerState;
use stratus_compute::xml::DomainType;
use stratus_host::RealHost;
use stratus_rpc::RequestContext;
use stratus_rpc::wire::compute::ImageRef;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use stratus_test_support::{Netns, command, fixtures};

use crate::harness::{Harness, image, request};
use crate::libvirt::{build_image, console_shows, open_up, terminate_leaves_no_domain};

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// How many times the guest's kernel has started, by its console.
fn boots(h: &Harness, id: &InstanceId) -> usize {
    std::fs::read_to_string(h.instance_dir(id).join("console.log"))
        .unwrap_or_default()
        .matches("Linux version")
        .count()
}

/// No report since `from` says the guest stopped or failed.
fn assert_no_stop_or_error(h: &Harness, id: InstanceId, from: usize) {
    let states = h.conductor.states(id);
    let since = &states[from.min(states.len())..];
    assert!(
        !since
            .iter()
            .any(|(s, _)| matches!(s, InstanceState::Stopped | InstanceState::Error)),
        "power sync reported a running guest as stopped or failed: {since:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libvirtd_restart_or_crash_keeps_the_guest_and_the_driver_reconnects() {
    let ns = Netns::new("lv");
    let daemon_dir = tempfile::tempdir().expect("tempdir");
    let daemon = PrivateLibvirtd::start(ns.name(), daemon_dir.path()).expect("private libvirtd");
    let driver = Arc::new(
        LibvirtDriver::connect(daemon.uri(), DomainType::Qemu)
            .await
            .expect("connect"),
    );
    let state = tempfile::tempdir().expect("tempdir");
    open_up(state.path());
    let h = Harness::start_with(
        state,
        driver.clone(),
        Arc::new(RealHost::in_netns(ns.name())),
    )
    .await;
    let image = build_image(h.images.path());
    let ctx = RequestContext::system();
    let m = &h.worker.manager;

    let req = request(&image);
    let id = req.instance_id;
    m.run_instance(&ctx, &req).await.expect("the guest runs");
    h.conductor
        .wait_for(id, InstanceState::Running)
        .await
        .expect("running reported");
    console_shows(&h, &id, "STRATUS-BOOT config drive").await;
    let name = domain_name(&id);
    let pid = daemon
        .qemu_pid(&name)
        .expect("libvirt's pid file for the guest");
    assert!(process_alive(pid), "qemu {pid} runs");
    let reported = h.conductor.states(id).len();

    // A restart as a service manager does it; power sync runs while the
    // daemon is away and must neither stop the guest nor report it.
    let started = Instant::now();
    daemon.stop_daemon(Stop::Term).expect("stop libvirtd");
    let stopped = started.elapsed();
    let away = driver
        .state(&name)
        .await
        .expect_err("no daemon: an error, never \"no such domain\"");
    eprintln!("while libvirtd is away: {away}");
    m.sync_power_states(&ctx).await;
    assert!(process_alive(pid), "qemu {pid} survived libvirtd stopping");
    let started = Instant::now();
    daemon.start_daemon().expect("start libvirtd again");
    let restarted = started.elapsed();
    let started = Instant::now();
    m.sync_power_states(&ctx).await;
    let first_sync = started.elapsed();
    assert_eq!(
        driver.state(&name).await.expect("state after reconnect"),
        Some(PowerState::Running)
    );
    assert_eq!(daemon.qemu_pid(&name), Some(pid), "the same QEMU");
    assert!(process_alive(pid));
    assert_eq!(
        daemon.virsh(&["domstate", &name]).expect("domstate").trim(),
        "running",
        "the new libvirtd re-attached to the guest"
    );
    eprintln!(
        "SIGTERM restart: stop {stopped:?}, start {restarted:?}, first power sync after it {first_sync:?}"
    );

    // A crash, and no call in between: the first call after it meets the
    // dead socket itself, reconnects and is retried.
    daemon.stop_daemon(Stop::Kill).expect("kill libvirtd");
    daemon.start_daemon().expect("start libvirtd again");
    let started = Instant::now();
    assert_eq!(
        driver.state(&name).await.expect("state after a crash"),
        Some(PowerState::Running)
    );
    let retried = started.elapsed();
    m.sync_power_states(&ctx).await;
    assert_eq!(daemon.qemu_pid(&name), Some(pid), "the same QEMU");
    assert!(process_alive(pid));
    eprintln!("SIGKILL crash: first state() after the restart took {retried:?}");
    assert_no_stop_or_error(&h, id, reported);
    assert_eq!(
        h.conductor.states(id).len(),
        reported,
        "power sync reported nothing for a guest that kept running"
    );

    // The manager drives the guest through the reconnected driver: a hard
    // reboot restarts its kernel, and terminate leaves nothing.
    let before = boots(&h, &id);
    m.reboot_instance(&ctx, id, true)
        .await
        .expect("hard reboot after the restarts");
    for _ in 0..600 {
        if boots(&h, &id) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        boots(&h, &id) > before,
        "the guest's kernel did not start again"
    );
    assert!(
        !m.console_output(id).await.expect("console").is_empty(),
        "console output"
    );
    assert_no_stop_or_error(&h, id, reported);
    terminate_leaves_no_domain(&h, &daemon, id).await;
    for _ in 0..100 {
        if !process_alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(pid), "qemu {pid} still runs");
    assert!(!h.instance_dir(&id).exists(), "files left");
    assert!(!h.has_address(&id).await, "address left");
    drop(h);
    drop(daemon);
}

/// A small tmpfs mounted over a folder; unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        command::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
                .arg("stratus-test-full")
                .arg(at),
            "mounting a tmpfs needs root",
        );
        Self(at.to_owned())
    }

    /// Grows the file system: space freed by an operator.
    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(ok.success(), "remount {}", self.0.display());
    }

    /// Bytes in use.
    fn used(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.0)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A raw image of `mib` MiB of incompressible bytes (no holes for a copy
/// to skip).
fn raw_image(dir: &Path, id: &str, mib: usize) -> ImageRef {
    let disk = dir.join(format!("{id}.raw"));
    let mut bytes = vec![0u8; mib << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in bytes.chunks_mut(8) {
        // xorshift: cheap bytes that nothing can compress or dedupe.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&disk, bytes).expect("image");
    fixtures::image(id, disk)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_image_fetch_fails_cleanly_and_keeps_the_cache_consistent() {
    let h = Harness::start().await;
    let instances = h.state.path().join("instances");
    // Declared after the harness, so it is unmounted before the state
    // folder is removed, panics included.
    let disk = SmallDisk::mount(&instances, "4m");
    let base = instances.join("_base");
    let ctx = RequestContext::system();
    let m = &h.worker.manager;

    let big = raw_image(h.images.path(), "ami-b16", 8);
    let req = request(&big);
    let id = req.instance_id;
    let started = Instant::now();
    assert!(
        m.run_instance(&ctx, &req).await.is_none(),
        "no room, no guest"
    );
    let failed_in = started.elapsed();

    // A full disk here may not be full on another host: the build goes
    // back to the scheduler (which stops after its max_attempts hosts)
    // with the reason, rather than ending in error on this host.
    let mut handed = None;
    for _ in 0..250 {
        handed = h
            .scheduler
            .handed_back
            .lock()
            .expect("lock")
            .iter()
            .find(|r| r.instance_id == id)
            .cloned();
        if handed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let handed = handed.expect("handed back to the scheduler");
    assert_eq!(handed.placement.hosts_tried, vec![h.host()]);
    let failure = handed.placement.failures.join("; ");
    let part = base.join("ami-b16.part");
    assert!(
        failure.contains("No space left on device") && failure.contains(&*part.to_string_lossy()),
        "{failure}"
    );
    let last = h.conductor.last(id).expect("reported");
    assert_eq!(
        (last.state, last.task_state.as_deref()),
        (InstanceState::Pending, Some("scheduling"))
    );
    let reason = last.reason.unwrap_or_default();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(reason.contains("image file"), "{reason}");
    assert!(
        !h.conductor
            .states(id)
            .iter()
            .any(|(s, _)| *s == InstanceState::Error),
        "handed back, not failed here"
    );
    eprintln!("disk full after {failed_in:?}: {reason}");

    // Nothing stays: no half image, no folder, domain or address, and the
    // space is free again.
    assert!(
        names_in(&base).is_empty(),
        "left in _base: {:?}",
        names_in(&base)
    );
    assert!(!h.instance_dir(&id).exists(), "instance folder left");
    assert_eq!(h.fake_state(id).await, None);
    assert!(!h.has_address(&id).await, "address left");
    assert!(disk.used() < 64 << 10, "{} bytes still used", disk.used());

    // The host still builds what fits.
    let small = image(h.images.path());
    let fits = request(&small);
    h.run_until_running(&fits, "a small image fits").await;

    // Space freed: the big image is fetched whole, then served from the
    // cache when its source is gone.
    disk.grow("64m");
    let again = request(&big);
    h.run_until_running(&again, "room now").await;
    assert_eq!(
        std::fs::metadata(base.join("ami-b16"))
            .expect("cached")
            .len(),
        8 << 20
    );
    std::fs::remove_file(&big.disk).expect("rm source");
    let cached = request(&big);
    h.run_until_running(&cached, "served from the cache").await;
    // The images, and one empty overlay of each, copied for each instance.
    let (templates, images): (Vec<String>, Vec<String>) = names_in(&base)
        .into_iter()
        .partition(|n| n.contains(".overlay-"));
    assert_eq!(
        images,
        vec![
            "ami-0000000000000001",
            "ami-0000000000000001.kernel",
            "ami-0000000000000001.ramdisk",
            "ami-b16"
        ]
    );
    let owners: Vec<&str> = templates
        .iter()
        .filter_map(|t| t.split(".overlay-").next())
        .collect();
    assert_eq!(owners, ["ami-0000000000000001", "ami-b16"], "{templates:?}");

    for id in [fits.instance_id, again.instance_id, cached.instance_id] {
        m.terminate_instance(&ctx, id).await;
        assert!(!h.instance_dir(&id).exists());
    }
    drop(disk);
    drop(h);
}
