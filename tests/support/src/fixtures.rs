//! Wire-type values tests build over and over.

use std::path::Path;

use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::AllocateFixedIp;
use stratus_rpc::wire::scheduler::HostReport;

/// A flavor with these resources.
pub fn flavor(name: &str, vcpus: u32, memory_mb: u64, root_gb: u64) -> Flavor {
    Flavor {
        name: name.into(),
        vcpus,
        memory_mb,
        root_gb,
    }
}

/// `m1.tiny`: one vCPU, `memory_mb`, a 1 GB root disk.
pub fn tiny(memory_mb: u64) -> Flavor {
    flavor("m1.tiny", 1, memory_mb, 1)
}

/// An image of one disk, no kernel or ramdisk.
pub fn image(id: &str, disk: impl AsRef<Path>) -> ImageRef {
    ImageRef {
        id: id.into(),
        disk: disk.as_ref().to_owned(),
        kernel: None,
        ramdisk: None,
        properties: Default::default(),
    }
}

/// A request to run a new instance of `image` and `flavor` in project
/// `p1`: no key, user data, reservation or placement.
pub fn run_instance(image: ImageRef, flavor: Flavor) -> RunInstance {
    RunInstance::new("p1".parse().expect("project"), flavor, image)
}

/// An idle, enabled host of the fake hypervisor with 100 GB of disk.
pub fn host_report(host: &str, zone: &str, vcpus: u32, memory_mb: u64) -> HostReport {
    HostReport {
        host: host.parse().expect("host"),
        availability_zone: zone.into(),
        vcpus,
        vcpus_used: 0,
        memory_mb,
        memory_mb_used: 0,
        disk_gb: 100,
        disk_gb_used: 0,
        running_instances: 0,
        hypervisor_type: "fake".into(),
        architecture: "x86_64".into(),
        enabled: true,
        disabled_reason: None,
    }
}

/// An SSH public key to inject (its private half is nowhere: tests only
/// look for it in the guest).
pub const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPe/aujvKiZYchfWfAw/nYLlpeMoYnIIPaEQUG84tEtE test@stratus";

/// A request for an instance of a flavor with these resources, its image a
/// disk that is not there (for placement, which never opens it).
pub fn sized_instance(vcpus: u32, memory_mb: u64, root_gb: u64) -> RunInstance {
    run_instance(
        image("ami-0000000000000001", "/nonexistent"),
        flavor("test", vcpus, memory_mb, root_gb),
    )
}

/// A request for an address for `instance_id` of `project` with `mac`, no deadline.
pub fn allocate_fixed_ip(instance_id: InstanceId, project: &str, mac: &str) -> AllocateFixedIp {
    AllocateFixedIp {
        instance_id,
        project_id: project.parse().expect("project"),
        mac: mac.parse().expect("mac"),
        deadline_ms: None,
        requested_address: None,
    }
}
