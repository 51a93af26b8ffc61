//! Hosts and instances for the unit tests.

use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::HostReport;

/// An idle, enabled host.
pub fn report(host: &str, zone: &str, vcpus: u32, memory_mb: u64) -> HostReport {
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

/// An instance of a flavor with these resources.
pub fn instance(vcpus: u32, memory_mb: u64, root_gb: u64) -> RunInstance {
    RunInstance {
        instance_id: InstanceId::new(),
        project_id: "p1".parse().expect("project"),
        flavor: Flavor {
            name: "test".into(),
            vcpus,
            memory_mb,
            root_gb,
        },
        image: ImageRef {
            id: "ami-0000000000000001".into(),
            disk: "/nonexistent".into(),
            kernel: None,
            ramdisk: None,
            properties: Default::default(),
        },
        security_groups: vec![],
        key_data: None,
        key_name: None,
        user_data: None,
        reservation_id: None,
        placement: Default::default(),
    }
}
