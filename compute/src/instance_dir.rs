//! One instance's folder on its host: disk, kernel, ramdisk, console log and
//! the journal of its build (`instance.json`, the step it reached, and
//! `request.json`, what it was asked), which start-up recovery reads back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stratus_rpc::wire::compute::{Flavor, RunInstance};
use stratus_rpc::wire::ids::{InstanceId, ProjectId};

/// `instance-<hex of the EC2 id>`, the libvirt domain and folder name.
pub fn domain_name(id: &InstanceId) -> String {
    let ec2 = id.ec2_id();
    format!("instance-{}", &ec2[2..])
}

/// How far a build got: each step is written before it acts, so a restart
/// knows what may exist of it (an address from `Network` on, a disk from
/// `Image`, filters from `Firewall`, a domain from `Spawning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStep {
    /// The request is saved; nothing else exists yet.
    Recorded,
    /// The conductor granted the build to this host.
    Claimed,
    /// Asking for the fixed IP and setting up the bridge.
    Network,
    /// Fetching the image and making the overlay.
    Image,
    /// Preparing the disk (key injection, config drive).
    Disk,
    /// Applying the firewall.
    Firewall,
    /// Defining and starting the domain.
    Spawning,
    /// The guest runs: the build is over.
    Built,
    /// The build failed; its error report is in the outbox and what is left
    /// of it is being cleaned up.
    Failed,
    /// The instance is being terminated: a restart finishes the terminate.
    Terminating,
    /// A copy of an instance another host runs is being removed: a restart
    /// finishes the removal, keeping the address.
    RemovingCopy,
}

impl BuildStep {
    /// Whether a build at this step is still under way (neither finished
    /// nor failed).
    pub fn under_way(self) -> bool {
        self < Self::Built
    }
}

/// What the worker needs to know of an instance after a restart: the
/// journal of its build, beside the request it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredRecord")]
pub struct InstanceRecord {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its resources.
    pub flavor: Flavor,
    /// How far its build got.
    pub step: BuildStep,
    /// When the conductor granted the build (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<u64>,
}

impl InstanceRecord {
    /// Whether the build finished.
    pub fn built(&self) -> bool {
        self.step == BuildStep::Built
    }
}

/// A record as stored, in this layout or the older one (`built: bool`).
#[derive(Deserialize)]
struct StoredRecord {
    instance_id: InstanceId,
    project_id: ProjectId,
    flavor: Flavor,
    #[serde(default)]
    step: Option<BuildStep>,
    #[serde(default)]
    built: Option<bool>,
    #[serde(default)]
    claimed_at: Option<u64>,
}

impl From<StoredRecord> for InstanceRecord {
    fn from(stored: StoredRecord) -> Self {
        let step = stored.step.unwrap_or(match stored.built {
            Some(true) => BuildStep::Built,
            _ => BuildStep::Recorded,
        });
        Self {
            instance_id: stored.instance_id,
            project_id: stored.project_id,
            flavor: stored.flavor,
            step,
            claimed_at: stored.claimed_at,
        }
    }
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

    /// The config drive, when the instance has one.
    pub fn config_drive(&self) -> PathBuf {
        self.root.join("disk.config")
    }

    /// The first serial port's log.
    pub fn console_log(&self) -> PathBuf {
        self.root.join("console.log")
    }

    /// The instance record.
    pub fn record(&self) -> PathBuf {
        self.root.join("instance.json")
    }

    /// The request the instance was built from.
    pub fn request(&self) -> PathBuf {
        self.root.join("request.json")
    }

    /// Writes the record, whole or not at all, and flushed to disk.
    pub async fn write_record(&self, record: &InstanceRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        crate::durable::write_atomically_async(&self.record(), json).await
    }

    /// Writes the request beside the record, whole or not at all.
    pub async fn write_request(&self, request: &RunInstance) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(request).map_err(std::io::Error::other)?;
        crate::durable::write_atomically_async(&self.request(), json).await
    }

    /// Reads the record of the folder at `root`.
    pub async fn read_record(root: &Path) -> Option<InstanceRecord> {
        let bytes = tokio::fs::read(root.join("instance.json")).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Reads the request saved in the folder at `root` (none in folders of
    /// the older layout).
    pub async fn read_request(root: &Path) -> Option<RunInstance> {
        let bytes = tokio::fs::read(root.join("request.json")).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes everything in the folder but the record and the request, so
    /// a build starts over from them.
    pub async fn clear_all_but_the_journal(&self) -> std::io::Result<()> {
        let mut entries = tokio::fs::read_dir(&self.root).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            if name == "instance.json" || name == "request.json" {
                continue;
            }
            let path = entry.path();
            if entry.file_type().await?.is_dir() {
                tokio::fs::remove_dir_all(&path).await?;
            } else {
                tokio::fs::remove_file(&path).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{BuildStep, InstanceRecord};

    #[test]
    fn records_of_the_older_layout_still_read() {
        let id = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
        let flavor = r#"{"name":"m1.tiny","vcpus":1,"memory_mb":256,"root_gb":1}"#;
        for (built, step) in [("true", BuildStep::Built), ("false", BuildStep::Recorded)] {
            let json = format!(
                r#"{{"instance_id":"{id}","project_id":"p1","flavor":{flavor},"built":{built}}}"#
            );
            let record: InstanceRecord = serde_json::from_str(&json).expect("old record");
            assert_eq!(record.step, step);
        }
    }
}
