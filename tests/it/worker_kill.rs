//! A compute worker killed with SIGKILL in the middle of builds, on real
//! libvirt and QEMU: `stratus compute` runs as a process of its own over
//! RabbitMQ, guests in a test namespace with a libvirtd of its own (which,
//! like a host's, outlives the worker). On restart the guest that ran is
//! kept (the same QEMU process), the interrupted builds are resumed at once
//! from their journals (what they left removed, their addresses kept) and
//! the redelivered requests find them built: every instance ends running,
//! built once, and nothing is left of anything else.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratus::ec2_client::texts;
use stratus_compute::host::libvirtd::PrivateLibvirtd;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_test_support::broker;
use stratus_test_support::workspace::stratus_bin;

use crate::cloud::Cloud;

const HOST: &str = "kill-host";

/// The worker process, the namespace and its daemon; removed however the
/// test ends.
struct Site {
    netns: String,
    worker: Option<Child>,
    libvirtd: Option<PrivateLibvirtd>,
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut child) = self.worker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.libvirtd.take());
        stratus_host::netns::remove(&self.netns);
    }
}

fn spawn_worker(cloud: &Cloud, netns: &str, uri: &str, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(stratus_bin())
        .arg("compute")
        .env("STRATUS_RPC__URL", &cloud.rpc.url)
        .env("STRATUS_RPC__EXCHANGE", &cloud.rpc.exchange)
        .env("STRATUS_RPC__QUEUE_EXPIRY_MS", "120000")
        .env("STRATUS_NODE__HOST", HOST)
        .env("STRATUS_NODE__STATE_DIR", cloud.dir.path().join("compute"))
        .env("STRATUS_NODE__NETNS", netns)
        .env("STRATUS_COMPUTE__LIBVIRT_URI", uri)
        .env("STRATUS_COMPUTE__VIRT_TYPE", "qemu")
        .env("STRATUS_COMPUTE__REPORT_INTERVAL_SECS", "1")
        .env("STRATUS_LOG__FILTER", "info,lapin=off")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start stratus compute")
}

async fn wait_for_host(cloud: &Cloud, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cloud
        .scheduler
        .placer()
        .hosts(Instant::now())
        .iter()
        .any(|(r, up)| *up && r.host.as_str() == HOST)
    {
        assert!(
            Instant::now() < deadline,
            "the worker never reported:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_instances(cloud: &Cloud, image: &str, count: &str) -> Vec<String> {
    let out = cloud
        .client
        .action(
            "RunInstances",
            &[
                ("ImageId", image),
                ("InstanceType", "m1.tiny"),
                ("MinCount", count),
                ("MaxCount", count),
            ],
        )
        .await
        .expect("RunInstances");
    texts(&out, "instanceId")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_build_keeps_its_running_guest_and_finishes_the_rest() {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let rpc = broker::rpc_config(format!("stratus-kill-{tag}"), Duration::from_secs(120));
    let cloud = Cloud::start(&rpc, 0, 600).await;
    // QEMU runs as its own user: it must reach the instance folders.
    std::fs::set_permissions(cloud.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let mut site = Site {
        netns: format!("st-kill-{tag}"),
        worker: None,
        libvirtd: None,
    };
    stratus_host::netns::prepare(&site.netns)
        .await
        .expect("namespace");
    let libvirtd = PrivateLibvirtd::start(&site.netns, &cloud.dir.path().join("libvirt"))
        .expect("libvirtd in the namespace");
    let uri = libvirtd.uri().to_owned();
    site.libvirtd = Some(libvirtd);

    let image_dir = cloud.dir.path().join("image");
    stratus_test_support::images::build_test_image(&image_dir);
    let imported = stratus_api::admin::import_image(
        &cloud.api.cloud.db,
        "test",
        &image_dir.join("disk.qcow2"),
        Some(&image_dir.join("kernel")),
        Some(&image_dir.join("ramdisk")),
    )
    .await
    .expect("import");
    let image = imported.image_id;

    let log = cloud.dir.path().join("compute.log");
    site.worker = Some(spawn_worker(&cloud, &site.netns, &uri, &log));
    wait_for_host(&cloud, &log).await;
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // One guest running, then two builds under way.
    let first = run_instances(&cloud, &image, "1").await;
    let first = first.first().expect("an instance").clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    let first_row = loop {
        let row = cloud.row(&first).await;
        if row.state == InstanceState::Running {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "{first} is {}: {:?}\n{}",
            row.state,
            row.state_reason,
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_domain =
        stratus_compute::instance_dir::domain_name(&first_row.uuid.parse().expect("uuid"));
    let libvirtd = site.libvirtd.as_ref().expect("daemon");
    let first_pid = libvirtd.qemu_pid(&first_domain).expect("the guest's QEMU");

    let building = run_instances(&cloud, &image, "2").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = cloud.instances().await;
        let spawning = rows
            .iter()
            .filter(|r| building.contains(&r.ec2_id))
            .filter(|r| r.task_state.as_deref() == Some("spawning"))
            .count();
        if spawning == building.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the builds never got under way: {:?}\n{}",
            rows.iter()
                .map(|r| (&r.ec2_id, &r.state, &r.task_state))
                .collect::<Vec<_>>(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut worker = site.worker.take().expect("worker");
    // Child::kill is SIGKILL on Unix: no handler, no clean-up.
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    let killed_during: Vec<_> = cloud
        .instances()
        .await
        .into_iter()
        .filter(|r| building.contains(&r.ec2_id))
        .map(|r| (r.ec2_id, r.state, r.task_state))
        .collect();

    site.worker = Some(spawn_worker(&cloud, &site.netns, &uri, &log));
    wait_for_host(&cloud, &log).await;
    let rows = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let rows = cloud.instances().await;
            let settled = rows
                .iter()
                .all(|r| r.state == InstanceState::Running || r.state == InstanceState::Error);
            if settled {
                break rows;
            }
            assert!(
                Instant::now() < deadline,
                "not settled: {:?}\n{}",
                rows.iter()
                    .map(|r| (&r.ec2_id, &r.state, &r.task_state, &r.state_reason))
                    .collect::<Vec<_>>(),
                logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    // The restarted worker found the interrupted builds: resumed them, or
    // adopted a guest one had started just before the kill.
    assert!(
        logs().contains("cleaning up a build interrupted by a restart")
            || logs().contains("adopting a guest whose build a restart cut short"),
        "no interrupted build was recovered\n{}",
        logs()
    );
    // The guest that ran is the same QEMU process, still running.
    let libvirtd = site.libvirtd.as_ref().expect("daemon");
    assert_eq!(
        libvirtd.qemu_pid(&first_domain),
        Some(first_pid),
        "the running guest was restarted or lost\n{}",
        logs()
    );
    for r in &rows {
        assert!(
            r.state == InstanceState::Running
                || r.state_reason.as_deref().is_some_and(|s| !s.is_empty()),
            "{} in error without a reason",
            r.ec2_id
        );
    }
    let running: Vec<_> = rows
        .iter()
        .filter(|r| r.state == InstanceState::Running)
        .collect();
    assert!(
        running.iter().any(|r| r.ec2_id == first),
        "{first} is not running"
    );
    // The interrupted builds were resumed from their journals at the
    // restart (their redelivered requests found them built), never shown in
    // error meanwhile.
    assert_eq!(
        running.len(),
        rows.len(),
        "{:?}\n{}",
        rows.iter()
            .map(|r| (&r.ec2_id, &r.state, &r.state_reason))
            .collect::<Vec<_>>(),
        logs()
    );
    // Exactly the running instances have a domain, a folder and an address.
    let mut domains: Vec<String> = libvirtd
        .virsh(&["list", "--all", "--name"])
        .expect("virsh list")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    domains.sort();
    let mut expected: Vec<String> = running
        .iter()
        .map(|r| stratus_compute::instance_dir::domain_name(&r.uuid.parse().expect("uuid")))
        .collect();
    expected.sort();
    assert_eq!(domains, expected, "domains\n{}", logs());
    let mut folders: Vec<String> = std::fs::read_dir(cloud.dir.path().join("compute/instances"))
        .expect("instances folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("instance-"))
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        expected,
        "instance folders; instances {:?}\n{}",
        rows.iter()
            .map(|r| (&r.ec2_id, &r.state, &r.state_reason))
            .collect::<Vec<_>>(),
        logs()
    );
    let held = cloud.held_addresses().await;
    let mut holders: Vec<&String> = held.keys().collect();
    holders.sort();
    let mut running_ids: Vec<&String> = running.iter().map(|r| &r.ec2_id).collect();
    running_ids.sort();
    assert_eq!(holders, running_ids, "addresses held");
    eprintln!(
        "killed with builds at {killed_during:?}; after restart: {:?}",
        rows.iter()
            .map(|r| (&r.ec2_id, &r.state, &r.state_reason))
            .collect::<Vec<_>>()
    );

    // Terminate everything so the daemon has nothing left to stop.
    for r in &rows {
        let _ = cloud
            .client
            .action("TerminateInstances", &[("InstanceId.1", r.ec2_id.as_str())])
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while libvirtd
        .virsh(&["list", "--all", "--name"])
        .map(|l| l.lines().any(|l| !l.trim().is_empty()))
        .unwrap_or(false)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(site);
    cloud.stop().await;
}
