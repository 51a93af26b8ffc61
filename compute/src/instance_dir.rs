//! One instance's folder on its host: disk, kernel, ramdisk, console log and
//! a record of what it is, which start-up recovery reads back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stratus_rpc::wire::compute::Flavor;
use stratus_rpc::wire::ids::{InstanceId, ProjectId};

/// `instance-<hex of the EC2 id>`, the libvirt domain and folder name.
pub fn domain_name(id: &InstanceId) -> String {
    let ec2 = id.ec2_id();
    format!("instance-{}", &ec2[2..])
}

/// What the worker needs to know of an instance after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its resources.
    pub flavor: Flavor,
    /// Whether the build finished (false: half-built, to be cleaned).
    pub built: bool,
}

/// Paths of one instance's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDir {
    root: PathBuf,
}

impl InstanceDir {
    /// The folder of `id` under `instances_dir`.
    pub fn new(instances_dir: &Path, id: &InstanceId) -> Self {
        Self {
            root: instances_dir.join(domain_name(id)),
        }
    }

    /// The folder at `root`, as recovery finds it.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The qcow2 overlay.
    pub fn disk(&self) -> PathBuf {
        self.root.join("disk")
    }

    /// The kernel, for direct boot.
    pub fn kernel(&self) -> PathBuf {
        self.root.join("kernel")
    }

    /// The initramfs.
    pub fn ramdisk(&self) -> PathBuf {
        self.root.join("ramdisk")
    }

    /// The first serial port's log.
    pub fn console_log(&self) -> PathBuf {
        self.root.join("console.log")
    }

    /// The instance record.
    pub fn record(&self) -> PathBuf {
        self.root.join("instance.json")
    }

    /// Writes the record (through a temp file, so it is whole or absent).
    pub async fn write_record(&self, record: &InstanceRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let tmp = self.root.join("instance.json.tmp");
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, self.record()).await
    }

    /// Reads the record of the folder at `root`.
    pub async fn read_record(root: &Path) -> Option<InstanceRecord> {
        let bytes = tokio::fs::read(root.join("instance.json")).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
