//! File injection into a guest's disk before it boots (Nova's first way of
//! getting an SSH key in): expose the qcow2 overlay as a block device
//! (`expose`), mount its root file system, and write
//! `/root/.ssh/authorized_keys`. Paths inside the guest are fixed, never
//! built from input, and no step follows a symlink the image planted.

pub mod expose;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::network::FixedIp;

use stratus_host::{CommandError, HostCommands};

use crate::host::proc::is_mounted;
use crate::instance_dir::InstanceDir;
use crate::manager::{PrepareDisk, PrepareError};
use expose::{ExposeMethod, expose};

/// Injection failed; the build fails with this as its reason.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The key is not an OpenSSH public key.
    #[error("the key is not an OpenSSH public key")]
    InvalidKey(#[source] ssh_key::Error),
    /// Exposing, mounting or unmounting failed.
    #[error(transparent)]
    Expose(#[from] CommandError),
    /// No partition holds a file system we can write.
    #[error("no ext2/3/4 file system on {0}")]
    NoFileSystem(String),
    /// The guest's file system (or the work folder) refused a write.
    #[error("writing {path} in the guest")]
    Write {
        /// The path inside the guest, or the work folder.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image made a path the key goes through a symlink, which could
    /// point into the host.
    #[error("{0} is a symlink in the image; refusing to follow it")]
    Symlink(String),
}

/// Checks `key` and returns it as one canonical `authorized_keys` line.
pub fn canonical_key(key: &str) -> Result<String, InjectError> {
    ssh_key::PublicKey::from_openssh(key.trim())
        .and_then(|parsed| parsed.to_openssh())
        .map_err(InjectError::InvalidKey)
}

/// What a guest gets before it boots: its key injected into its disk, and
/// a config drive when configured.
#[derive(Debug, Clone)]
pub struct GuestData {
    /// Runs the commands that expose and mount the disk.
    pub host: Arc<dyn HostCommands>,
    /// How disks are exposed for injection.
    pub method: ExposeMethod,
    /// Build and attach a config drive.
    pub config_drive: bool,
    /// This host's availability zone, for the metadata.
    pub availability_zone: String,
}

impl GuestData {
    /// Writes the instance's config drive as `request` has it; its path.
    async fn write_config_drive(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        fixed: &FixedIp,
    ) -> Result<PathBuf, PrepareError> {
        crate::config_drive::build(
            self.host.as_ref(),
            dir.root(),
            request,
            fixed,
            &self.availability_zone,
        )
        .await
        .map_err(Into::into)
    }
}

#[async_trait]
impl PrepareDisk for GuestData {
    async fn prepare_disk(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        fixed: &FixedIp,
    ) -> Result<Option<PathBuf>, PrepareError> {
        if let Some(key) = &request.key_data {
            let meta = crate::config_drive::openstack_meta_data(request, &self.availability_zone);
            inject_files(
                self.host.as_ref(),
                &dir.disk(),
                &dir.root().join("inject"),
                key,
                Some(&meta.to_string()),
                self.method,
            )
            .await?;
        }
        if !self.config_drive {
            return Ok(None);
        }
        self.write_config_drive(request, dir, fixed).await.map(Some)
    }

    async fn refresh_config_drive(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        fixed: &FixedIp,
    ) -> Result<(), PrepareError> {
        self.write_config_drive(request, dir, fixed).await.map(drop)
    }

    async fn release_leftovers(&self, root: &Path) {
        expose::release_leftovers(self.host.as_ref(), &root.join("inject")).await;
    }
}

/// Appends `key` to `/root/.ssh/authorized_keys` in `disk` (once), using
/// `work` for the mount point. Whatever happens, nothing stays exposed or
/// mounted afterwards.
pub async fn inject_key(
    host: &dyn HostCommands,
    disk: &Path,
    work: &Path,
    key: &str,
    method: ExposeMethod,
) -> Result<(), InjectError> {
    inject_files(host, disk, work, key, None, method).await
}

/// As [`inject_key`], and writes `meta_js` (the instance's metadata as
/// JSON) to `/meta.js`, where Nova's images looked for it.
pub async fn inject_files(
    host: &dyn HostCommands,
    disk: &Path,
    work: &Path,
    key: &str,
    meta_js: Option<&str>,
    method: ExposeMethod,
) -> Result<(), InjectError> {
    let line = canonical_key(key)?;
    tokio::fs::create_dir_all(work)
        .await
        .map_err(write_error(&work.display().to_string()))?;
    let mut exposed = expose(host, disk, work, method).await?;
    let mountpoint = work.join("mnt");
    let result = write_into(host, &exposed.device, &mountpoint, &line, meta_js).await;
    if let Some(path) = mountpoint.to_str()
        && is_mounted(path).await
    {
        let _ = host.stdout("umount", &[path]).await;
    }
    exposed.release(host).await;
    let _ = tokio::fs::remove_dir(&mountpoint).await;
    let _ = tokio::fs::remove_dir(work).await;
    result
}

async fn write_into(
    host: &dyn HostCommands,
    device: &str,
    mountpoint: &Path,
    line: &str,
    meta_js: Option<&str>,
) -> Result<(), InjectError> {
    let root = root_device(host, device).await?;
    let shown = mountpoint.display().to_string();
    tokio::fs::create_dir_all(mountpoint)
        .await
        .map_err(write_error(&shown))?;
    let target = mountpoint.to_str().ok_or_else(|| {
        write_error(&shown)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path is not UTF-8",
        ))
    })?;
    host.stdout("mount", &["-o", "nosuid,nodev,noexec", &root, target])
        .await?;
    let mnt = mountpoint.to_owned();
    let line = line.to_owned();
    let meta_js = meta_js.map(str::to_owned);
    let written = tokio::task::spawn_blocking(move || {
        write_key(&mnt, &line)?;
        match meta_js {
            Some(meta) => write_meta(&mnt, &meta),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| write_error("/root/.ssh/authorized_keys")(std::io::Error::other(e)))?;
    host.stdout("umount", &[target]).await?;
    written
}

/// The device holding the root file system: the whole device when it has no
/// partitions, else its largest ext2/3/4 partition.
async fn root_device(host: &dyn HostCommands, device: &str) -> Result<String, InjectError> {
    let name = device.trim_start_matches("/dev/");
    let mut partitions: Vec<(u64, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(format!("/sys/block/{name}")) {
        for entry in entries.flatten() {
            let part = entry.file_name().to_string_lossy().into_owned();
            if part.starts_with(name) && part != name {
                let size = std::fs::read_to_string(entry.path().join("size"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                partitions.push((size, format!("/dev/{part}")));
            }
        }
    }
    if partitions.is_empty() {
        return Ok(device.to_owned());
    }
    partitions.sort();
    for (_, part) in partitions.into_iter().rev() {
        let kind = host
            .stdout("blkid", &["-o", "value", "-s", "TYPE", &part])
            .await
            .unwrap_or_default();
        if matches!(kind.trim(), "ext2" | "ext3" | "ext4") {
            return Ok(part);
        }
    }
    Err(InjectError::NoFileSystem(device.to_owned()))
}

/// Refuses a path the guest made a symlink (it could point into the host).
fn no_symlink(path: &Path, shown: &str) -> Result<(), InjectError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(InjectError::Symlink(shown.to_owned())),
        _ => Ok(()),
    }
}

/// Turns an I/O error on `path` into [`InjectError::Write`].
fn write_error(path: &str) -> impl Fn(std::io::Error) -> InjectError + use<> {
    let path = path.to_owned();
    move |source| InjectError::Write {
        path: path.clone(),
        source,
    }
}

fn write_key(mnt: &Path, line: &str) -> Result<(), InjectError> {
    let fail = write_error;
    let root: PathBuf = mnt.join("root");
    no_symlink(&root, "/root")?;
    if !root.exists() {
        std::fs::create_dir(&root).map_err(fail("/root"))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(fail("/root"))?;
    }
    let ssh = root.join(".ssh");
    no_symlink(&ssh, "/root/.ssh")?;
    if !ssh.exists() {
        std::fs::create_dir(&ssh).map_err(fail("/root/.ssh"))?;
    }
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))
        .map_err(fail("/root/.ssh"))?;
    std::os::unix::fs::chown(&ssh, Some(0), Some(0)).map_err(fail("/root/.ssh"))?;
    let keys = ssh.join("authorized_keys");
    no_symlink(&keys, "/root/.ssh/authorized_keys")?;
    let existing = std::fs::read_to_string(&keys).unwrap_or_default();
    if !existing.lines().any(|l| l.trim() == line) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            // A symlink planted between the check and the open is not followed.
            .custom_flags(libc_o_nofollow())
            .open(&keys)
            .map_err(fail("/root/.ssh/authorized_keys"))?;
        let mut text = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        file.write_all(text.as_bytes())
            .map_err(fail("/root/.ssh/authorized_keys"))?;
    }
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600))
        .map_err(fail("/root/.ssh/authorized_keys"))?;
    std::os::unix::fs::chown(&keys, Some(0), Some(0))
        .map_err(fail("/root/.ssh/authorized_keys"))?;
    Ok(())
}

fn write_meta(mnt: &Path, meta: &str) -> Result<(), InjectError> {
    let path = mnt.join("meta.js");
    no_symlink(&path, "/meta.js")?;
    let fail = write_error("/meta.js");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc_o_nofollow())
        .open(&path)
        .map_err(&fail)?;
    file.write_all(meta.as_bytes()).map_err(fail)
}

/// `O_NOFOLLOW` on Linux.
const fn libc_o_nofollow() -> i32 {
    0o400000
}
