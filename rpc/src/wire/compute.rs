//! Messages to compute workers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::firewall::SecurityGroupUpdate;
use super::ids::{InstanceId, ProjectId};
use super::scheduler::Placement;

/// An instance type (flavor): the resources an instance gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    /// Its name, e.g. `m1.tiny`.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Root disk in GiB (0: the image's own size).
    pub root_gb: u64,
}

/// Where an image's files are, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `ami-…`; also its name in the image cache.
    pub id: String,
    /// The disk image (raw or qcow2) on a path every compute host can read.
    pub disk: PathBuf,
    /// A kernel for direct boot, if the image has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<PathBuf>,
    /// Its initramfs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk: Option<PathBuf>,
    /// What the image needs of a host.
    #[serde(default)]
    pub properties: ImageProperties,
}

/// Image properties the scheduler matches against hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProperties {
    /// The CPU architecture it was built for (`x86_64`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The hypervisor it needs (`kvm`, `qemu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor_type: Option<String>,
}

/// Build and start one instance on the receiving host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInstance {
    /// The instance to build.
    pub instance_id: InstanceId,
    /// Its project (picks its network).
    pub project_id: ProjectId,
    /// Its resources.
    pub flavor: Flavor,
    /// What it boots.
    pub image: ImageRef,
    /// Its security groups, with their rules and members.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupUpdate>,
    /// The OpenSSH public key of its key pair, to inject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_data: Option<String>,
    /// The key pair's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// User data, base64-encoded as EC2 takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// The reservation it was launched in (`r-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// Where it is being placed, and where it was tried.
    #[serde(default)]
    pub placement: Placement,
    /// The public address it launches with, if any (for its config drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<std::net::Ipv4Addr>,
    /// Its public DNS name, beside the address (hosts are not told the
    /// cloud's public domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_hostname: Option<String>,
    /// The fixed IP it must have (RunInstances' PrivateIpAddress), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<std::net::Ipv4Addr>,
    /// EC2's source/destination check (on unless its owner turned it off);
    /// requests saved before it existed read back as on.
    #[serde(default = "checked")]
    pub source_dest_check: bool,
}

fn checked() -> bool {
    true
}

impl RunInstance {
    /// A new instance (a fresh id) of `image` and `flavor` in `project_id`,
    /// with no groups, key, user data, reservation or placement yet.
    pub fn new(project_id: ProjectId, flavor: Flavor, image: ImageRef) -> Self {
        Self {
            instance_id: InstanceId::new(),
            project_id,
            flavor,
            image,
            security_groups: vec![],
            key_data: None,
            key_name: None,
            user_data: None,
            reservation_id: None,
            placement: Placement::default(),
            public_address: None,
            public_hostname: None,
            private_ip_address: None,
            source_dest_check: true,
        }
    }
}

/// Stop or resume giving a host new instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetHostEnabled {
    /// Take new instances.
    pub enabled: bool,
    /// Why (shown in reports and `stratus service list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Names one instance for terminate, reboot, stop, start and console output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRef {
    /// The instance.
    pub instance_id: InstanceId,
}

/// Start one stopped instance, as the api has it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartInstance {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its instance type now (ModifyInstanceAttribute may have changed it
    /// while it was stopped): the host resizes the guest before it powers
    /// it on. `None` (an older api): the host keeps the size it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<Flavor>,
    /// Its user data now, base64 (`Some(None)`: none), which may also have
    /// changed while it was stopped: the host rebuilds its config drive
    /// when it differs. `None` (an older api): the drive stays as it is.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub user_data: Option<Option<String>>,
}

/// A field that is there, even as `null` (`Some(None)`), told apart from
/// one that is missing (`None`, through `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// An instance's new security groups, each with its rules and members: its
/// host re-applies the instance's filters (ModifyInstanceAttribute groupSet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceGroups {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its groups, in order.
    pub security_groups: Vec<SecurityGroupUpdate>,
}

/// An instance's source/destination check turned on or off: its host
/// re-applies its port's filters (ModifyInstanceAttribute sourceDestCheck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDestCheck {
    /// The instance.
    pub instance_id: InstanceId,
    /// On: only its own address as a source; off: any but the cloud's.
    pub checked: bool,
}

/// Reboot one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootInstance {
    /// The instance.
    pub instance_id: InstanceId,
    /// Reset (hard) rather than ask the guest (soft).
    pub hard: bool,
}

#[cfg(test)]
mod tests {
    use super::StartInstance;

    #[test]
    fn a_start_tells_no_user_data_from_user_data_not_sent() {
        let id = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
        let decode =
            |json: String| -> StartInstance { serde_json::from_str(&json).expect("start") };
        // From an api that sends neither: the host keeps what it has.
        let older = decode(format!(r#"{{"instance_id":"{id}"}}"#));
        assert_eq!((&older.flavor, &older.user_data), (&None, &None));
        let none = decode(format!(r#"{{"instance_id":"{id}","user_data":null}}"#));
        assert_eq!(none.user_data, Some(None));
        let some = decode(format!(r#"{{"instance_id":"{id}","user_data":"aGk="}}"#));
        assert_eq!(some.user_data, Some(Some("aGk=".to_owned())));
        // And each goes out as it came in.
        for start in [older, none, some] {
            let json = serde_json::to_string(&start).expect("encode");
            assert_eq!(decode(json), start);
        }
    }
}
