//! SSH key injection into real qcow2 overlays (whole-disk ext4 and an
//! MBR-partitioned disk), through the userspace path these hosts have.

use std::path::{Path, PathBuf};
use std::process::Command;

use stratus_compute::host::local;
use stratus_compute::inject::expose::ExposeMethod;
use stratus_compute::inject::{InjectError, inject_files, inject_key};
use stratus_test_support::fixtures::SSH_KEY as KEY;
use stratus_test_support::{images, sh};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// An ext4 image of `mib` MiB holding `tree`.
fn ext4(dir: &Path, name: &str, mib: u64, tree: &Path) -> PathBuf {
    let raw = dir.join(name);
    sh("truncate", &["-s", &format!("{mib}M"), s(&raw)]);
    sh("mke2fs", &["-q", "-t", "ext4", "-d", s(tree), s(&raw)]);
    raw
}

/// A qcow2 overlay over a qcow2 base made from `raw`.
fn overlay(dir: &Path, raw: &Path) -> PathBuf {
    let base = dir.join("base.qcow2");
    sh(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            s(raw),
            s(&base),
        ],
    );
    let top = dir.join("disk.qcow2");
    images::qcow2_overlay(&base, &top);
    top
}

/// Injects the key into an overlay over `raw`, which must fail (`why` says
/// why); the work folder it used, and the error.
async fn refused_key(dir: &Path, raw: &Path, why: &str) -> (PathBuf, InjectError) {
    let disk = overlay(dir, raw);
    let work = dir.join("work");
    let err = inject_key(&local(), &disk, &work, KEY, ExposeMethod::Userspace)
        .await
        .expect_err(why);
    (work, err)
}

fn tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).expect("tree");
    std::fs::write(tree.join("etc/hostname"), "guest\n").expect("file");
    tree
}

fn whole_disk(dir: &Path) -> (PathBuf, u64) {
    let raw = ext4(dir, "fs.raw", 32, &tree(dir));
    (overlay(dir, &raw), 0)
}

fn mbr_disk(dir: &Path) -> (PathBuf, u64) {
    let fs = ext4(dir, "fs.raw", 31, &tree(dir));
    let raw = dir.join("disk.raw");
    sh("truncate", &["-s", "32M", s(&raw)]);
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q", s(&raw)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"label: dos\nstart=2048, type=83\n")
        .expect("write");
    assert!(sfdisk.wait().expect("wait").success());
    sh(
        "dd",
        &[
            "status=none",
            "conv=notrunc",
            "bs=512",
            "seek=2048",
            &format!("if={}", s(&fs)),
            &format!("of={}", s(&raw)),
        ],
    );
    (overlay(dir, &raw), 2048)
}

/// The overlay's file system (at `sector`) as a raw file debugfs can read.
fn readable(dir: &Path, disk: &Path, sector: u64) -> PathBuf {
    let raw = dir.join("check.raw");
    sh(
        "qemu-img",
        &["convert", "-q", "-O", "raw", s(disk), s(&raw)],
    );
    if sector == 0 {
        return raw;
    }
    let part = dir.join("check.part");
    sh(
        "dd",
        &[
            "status=none",
            "bs=512",
            &format!("skip={sector}"),
            &format!("if={}", s(&raw)),
            &format!("of={}", s(&part)),
        ],
    );
    part
}

fn debugfs(image: &Path, request: &str) -> String {
    sh("debugfs", &["-R", request, s(image)])
}

/// Nothing of `work` remains: no daemon, mount or loop device refers to it.
fn nothing_left(work: &Path) {
    let work = s(work);
    let procs = Command::new("pgrep")
        .args(["-af", "qemu-storage-daemon"])
        .output()
        .expect("pgrep");
    assert!(
        !String::from_utf8_lossy(&procs.stdout).contains(work),
        "daemon left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains(work), "mount left:\n{mounts}");
    let loops = sh("losetup", &["-a"]);
    assert!(!loops.contains(work), "loop device left:\n{loops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lands_once_with_the_right_modes_on_whole_and_partitioned_disks() {
    for (kind, make) in [
        ("whole", whole_disk as fn(&Path) -> (PathBuf, u64)),
        ("mbr", mbr_disk),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (disk, sector) = make(dir.path());
        let work = dir.path().join("work");
        for _ in 0..2 {
            inject_files(
                &local(),
                &disk,
                &work,
                KEY,
                Some("{\"uuid\":\"u-1\"}"),
                ExposeMethod::Userspace,
            )
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
            nothing_left(&work);
        }
        let image = readable(dir.path(), &disk, sector);
        let keys = debugfs(&image, "cat /root/.ssh/authorized_keys");
        assert_eq!(keys.matches("ssh-ed25519").count(), 1, "{kind}: {keys}");
        assert!(keys.contains(&KEY[..60]), "{kind}: {keys}");
        let file = debugfs(&image, "stat /root/.ssh/authorized_keys");
        assert!(
            file.contains("Mode:  0600") && file.contains("User:     0"),
            "{kind}: {file}"
        );
        assert_eq!(
            debugfs(&image, "cat /meta.js"),
            "{\"uuid\":\"u-1\"}",
            "{kind}"
        );
        let ssh = debugfs(&image, "stat /root/.ssh");
        assert!(ssh.contains("Mode:  0700"), "{kind}: {ssh}");
        // The base image is untouched: the write went into the overlay.
        let base = readable(dir.path(), &dir.path().join("base.qcow2"), sector);
        assert!(
            !debugfs(&base, "ls -l /").contains("root"),
            "{kind}: base changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failure_leaves_no_process_mount_or_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A disk with no file system: exposing works, mounting fails.
    let raw = dir.path().join("blank.raw");
    sh("truncate", &["-s", "16M", s(&raw)]);
    let (work, err) = refused_key(dir.path(), &raw, "nothing to mount").await;
    assert!(err.to_string().contains("mount"), "{err}");
    nothing_left(&work);
}

#[tokio::test]
async fn a_bad_key_is_refused_before_the_disk_is_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    for bad in ["not a key", "ssh-ed25519 AAAA; rm -rf /", "ssh-rsa"] {
        let err = inject_key(
            &local(),
            Path::new("/nonexistent.qcow2"),
            &work,
            bad,
            ExposeMethod::Userspace,
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, InjectError::InvalidKey(_)), "{bad}: {err}");
    }
    assert!(!work.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_in_the_image_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).expect("victim");
    let tree = tree(dir.path());
    std::fs::create_dir(tree.join("root")).expect("root");
    std::os::unix::fs::symlink(&victim, tree.join("root/.ssh")).expect("symlink");
    let raw = ext4(dir.path(), "fs.raw", 32, &tree);
    let (work, err) = refused_key(dir.path(), &raw, "refused").await;
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(
        !victim.join("authorized_keys").exists(),
        "wrote through the image's symlink"
    );
    nothing_left(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_injection_cut_short_left_behind_is_released() {
    use stratus_compute::inject::expose::{expose, release_leftovers};
    let dir = tempfile::tempdir().expect("tempdir");
    let (disk, _) = whole_disk(dir.path());
    let work = dir.path().join("inject");
    std::fs::create_dir_all(&work).expect("work");
    // As far as an injection gets before its worker is killed: the disk
    // exported, a loop device on it, its root mounted; nothing undoes it.
    let exposed = expose(&local(), &disk, &work, ExposeMethod::Userspace)
        .await
        .expect("expose");
    let mnt = work.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    sh("mount", &[&exposed.device, s(&mnt)]);
    drop(exposed);
    let procs = sh("pgrep", &["-af", "qemu-storage-daemon"]);
    assert!(procs.contains(s(&work)), "no daemon to clean: {procs}");

    release_leftovers(&local(), &work).await;
    nothing_left(&work);
    std::fs::remove_dir_all(&work).expect("the folder can go now");
    // The disk is free again: another exposure takes it.
    std::fs::create_dir_all(&work).expect("work");
    let mut again = expose(&local(), &disk, &work, ExposeMethod::Userspace)
        .await
        .expect("expose again");
    again.release(&local()).await;
    nothing_left(&work);
}

#[tokio::test]
async fn a_userspace_injection_runs_and_undoes_its_commands_through_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.qcow2");
    let work = dir.path().join("inject");
    let host = stratus_host::FakeHost::new();
    host.answer("losetup", Ok("/dev/loop-fake\n"));
    inject_files(
        &host,
        &disk,
        &work,
        KEY,
        Some("{}"),
        ExposeMethod::Userspace,
    )
    .await
    .expect("inject");
    let calls = host.calls();
    let programs: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(
        programs,
        [
            "qemu-storage-daemon",
            "losetup",
            "partx",
            "mount",
            "umount",
            "losetup"
        ]
    );
    let mnt = work.join("mnt");
    assert_eq!(
        calls[3],
        [
            "mount",
            "-o",
            "nosuid,nodev,noexec",
            "/dev/loop-fake",
            s(&mnt)
        ]
    );
    assert_eq!(calls[5], ["losetup", "-d", "/dev/loop-fake"]);
    // Nothing was mounted, so the key landed in the mount point itself.
    let keys = std::fs::read_to_string(mnt.join("root/.ssh/authorized_keys")).expect("keys");
    assert!(keys.contains(&KEY[..60]), "{keys}");
}
