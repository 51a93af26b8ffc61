//! Exposing a qcow2 overlay as a block device the host can mount, by one of
//! two paths:
//! - **kernel**: `qemu-nbd -c /dev/nbdN`, where the nbd module is loaded;
//!   devices are picked under a lock and counted busy only when
//!   `/sys/block/nbdN/pid` says so;
//! - **userspace**: `qemu-storage-daemon` exports the image as a file over
//!   FUSE, and a loop device (with partition scanning) sits on that file.
//!   These hosts have no nbd module; this is the path they use.
//!
//! Every path undoes itself: `Exposed::release` detaches and stops whatever
//! was started, and is also what runs when a step fails halfway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stratus_host::{CommandError, HostCommands};
use stratus_rpc::error::error_chain;

use crate::host::proc::{is_mounted, pid_runs};

fn utf8(path: &Path) -> Result<&str, CommandError> {
    path.to_str()
        .ok_or_else(|| CommandError::failed(format!("path {}", path.display()), "not UTF-8"))
}

/// Which path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExposeMethod {
    /// The kernel path where `/sys/module/nbd` exists, else userspace.
    Auto,
    /// `qemu-nbd -c /dev/nbdN`.
    Kernel,
    /// `qemu-storage-daemon` FUSE export and a loop device.
    Userspace,
}

impl ExposeMethod {
    /// The path this setting picks on this host.
    pub fn resolve(self) -> ExposeMethod {
        match self {
            Self::Auto if Path::new("/sys/module/nbd").exists() => Self::Kernel,
            Self::Auto => Self::Userspace,
            other => other,
        }
    }
}

/// A disk made visible as a block device; release it when done.
#[derive(Debug)]
pub struct Exposed {
    /// The whole-disk device (`/dev/loopN` or `/dev/nbdN`).
    pub device: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Userspace {
        pidfile: PathBuf,
        mountpoint: PathBuf,
    },
    Kernel,
}

/// Guards the kernel path's device choice, so two injections never pick the
/// same free device.
static NBD_PICK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Exposes `disk` (qcow2) by `method`, using `work` for the FUSE file, with
/// commands run through `host`.
pub async fn expose(
    host: &dyn HostCommands,
    disk: &Path,
    work: &Path,
    method: ExposeMethod,
) -> Result<Exposed, CommandError> {
    match method.resolve() {
        ExposeMethod::Kernel => expose_kernel(host, disk).await,
        _ => expose_userspace(host, disk, work).await,
    }
}

async fn expose_userspace(
    host: &dyn HostCommands,
    disk: &Path,
    work: &Path,
) -> Result<Exposed, CommandError> {
    let mountpoint = work.join("exposed");
    let pidfile = work.join("qsd.pid");
    tokio::fs::write(&mountpoint, b"").await.map_err(|e| {
        CommandError::io(
            format!("create {}", mountpoint.display()),
            "could not create the export file",
            e,
        )
    })?;
    let file = format!("driver=file,node-name=file,filename={}", utf8(disk)?);
    let export = format!(
        "type=fuse,id=exp,node-name=disk,mountpoint={},writable=on",
        utf8(&mountpoint)?
    );
    host.stdout(
        "qemu-storage-daemon",
        &[
            "--blockdev",
            &file,
            "--blockdev",
            "driver=qcow2,node-name=disk,file=file",
            "--export",
            &export,
            "--pidfile",
            utf8(&pidfile)?,
            "--daemonize",
        ],
    )
    .await?;
    let mut exposed = Exposed {
        device: String::new(),
        kind: Kind::Userspace {
            pidfile,
            mountpoint: mountpoint.clone(),
        },
    };
    match host
        .stdout(
            "losetup",
            &["--find", "--show", "--partscan", utf8(&mountpoint)?],
        )
        .await
    {
        Ok(device) => {
            exposed.device = device.trim().to_owned();
            add_partitions(host, &exposed.device).await;
            Ok(exposed)
        }
        Err(e) => {
            exposed.release(host).await;
            Err(e)
        }
    }
}

/// Tells the kernel about the device's partitions. `partx` reads MBR and
/// GPT tables in userspace, so this works where the kernel has no partition
/// parsers of its own (the CI kernels have neither MSDOS nor EFI support).
/// A disk without a table is fine: it is used whole.
async fn add_partitions(host: &dyn HostCommands, device: &str) {
    let _ = host.stdout("partx", &["--add", device]).await;
}

/// A device is busy when its `pid` file in sysfs names a process.
fn nbd_busy(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/block/{name}/pid"))
        .map(|pid| !pid.trim().is_empty())
        .unwrap_or(false)
}

async fn expose_kernel(host: &dyn HostCommands, disk: &Path) -> Result<Exposed, CommandError> {
    let _picking = NBD_PICK.lock().await;
    let mut devices: Vec<String> = std::fs::read_dir("/sys/block")
        .map_err(|e| CommandError::io("list /sys/block", "could not list block devices", e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("nbd"))
        .collect();
    devices.sort_by_key(|n| n[3..].parse::<u32>().unwrap_or(u32::MAX));
    let free = devices.into_iter().find(|n| !nbd_busy(n)).ok_or_else(|| {
        CommandError::failed(
            "pick an nbd device",
            "every /dev/nbd* is busy (or the nbd module has none)",
        )
    })?;
    let device = format!("/dev/{free}");
    host.stdout("qemu-nbd", &["--format=qcow2", "-c", &device, utf8(disk)?])
        .await?;
    // qemu-nbd returns before the kernel has the device: wait for its pid.
    for _ in 0..100 {
        if nbd_busy(&free) {
            add_partitions(host, &device).await;
            return Ok(Exposed {
                device,
                kind: Kind::Kernel,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = host.stdout("qemu-nbd", &["-d", &device]).await;
    Err(CommandError::failed(
        format!("qemu-nbd -c {device}"),
        "the device never became busy",
    ))
}

impl Exposed {
    /// Detaches the device and stops what exposed it. Never fails: each
    /// step is tried, and a failure logged.
    pub async fn release(&mut self, host: &dyn HostCommands) {
        match &self.kind {
            Kind::Kernel => {
                if let Err(e) = host.stdout("qemu-nbd", &["-d", &self.device]).await {
                    tracing::warn!(error = %error_chain(&e), "detaching the nbd device failed");
                }
            }
            Kind::Userspace {
                pidfile,
                mountpoint,
            } => {
                if !self.device.is_empty()
                    && let Err(e) = host.stdout("losetup", &["-d", &self.device]).await
                {
                    tracing::warn!(error = %error_chain(&e), "detaching the loop device failed");
                }
                if let Ok(pid) = tokio::fs::read_to_string(pidfile).await {
                    let pid = pid.trim().to_owned();
                    let _ = host.stdout("kill", &[&pid]).await;
                    // Wait for the daemon to unmount its export and exit.
                    for _ in 0..100 {
                        if !Path::new(&format!("/proc/{pid}")).exists() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                // If the daemon died without unmounting, the FUSE mount stays.
                if let Some(path) = mountpoint.to_str()
                    && is_mounted(path).await
                {
                    let _ = host.stdout("fusermount3", &["-u", path]).await;
                }
                let _ = tokio::fs::remove_file(mountpoint).await;
                let _ = tokio::fs::remove_file(pidfile).await;
            }
        }
        self.device.clear();
    }
}

/// Undoes what a userspace exposure in `work` left when the process that
/// made it died mid-injection (a worker killed): the mount of the guest's
/// root, the loop device on the export, the storage daemon and its FUSE
/// mount. The daemon survives its parent, and while it runs it holds the
/// disk's lock and the folder cannot be removed.
pub async fn release_leftovers(host: &dyn HostCommands, work: &Path) {
    if let Some(mnt) = work.join("mnt").to_str()
        && is_mounted(mnt).await
        && let Err(e) = host.stdout("umount", &[mnt]).await
    {
        tracing::warn!(error = %error_chain(&e), "unmounting a leftover injection mount failed");
    }
    let mountpoint = work.join("exposed");
    if let Some(file) = mountpoint.to_str()
        && let Ok(attached) = host.stdout("losetup", &["-j", file]).await
    {
        for device in attached.lines().filter_map(|l| l.split(':').next()) {
            if let Err(e) = host.stdout("losetup", &["-d", device]).await {
                tracing::warn!(error = %error_chain(&e), "detaching a leftover loop device failed");
            }
        }
    }
    // Only a pid that is still the storage daemon is stopped: after a
    // reboot the number may belong to anything.
    let pidfile = work.join("qsd.pid");
    let ours = tokio::fs::read_to_string(&pidfile)
        .await
        .is_ok_and(|pid| pid_runs(&pid, "qemu-storage-daemon"));
    if !ours {
        let _ = tokio::fs::remove_file(&pidfile).await;
    }
    let mut leftover = Exposed {
        device: String::new(),
        kind: Kind::Userspace {
            pidfile,
            mountpoint,
        },
    };
    leftover.release(host).await;
    let _ = tokio::fs::remove_dir(work.join("mnt")).await;
}
