//! The compute workers' methods (topic `compute`, `compute.<host>`).

use crate::declare::declare_service;
use crate::wire::compute::{
    InstanceGroups, InstanceRef, RebootInstance, RunInstance, SetHostEnabled, SourceDestCheck,
    StartInstance,
};
use crate::wire::firewall::SecurityGroupUpdate;
use crate::wire::scheduler::HostReport;

declare_service! {
    /// The topic compute workers serve.
    topic "compute";
    /// Talks to compute workers.
    client ComputeClient;
    /// What a compute worker does to the instances on its host.
    api ComputeApi;
    methods {
        /// Builds and boots an instance.
        RUN_INSTANCE: cast_to_host run_instance(request: RunInstance);
        /// Destroys an instance and everything it holds.
        TERMINATE_INSTANCE: cast_to_host terminate_instance(instance: InstanceRef);
        /// Removes this host's duplicate copy of an instance another host
        /// runs: everything but the address, which the two copies share.
        REMOVE_COPY: cast_to_host remove_copy(instance: InstanceRef);
        /// Reboots an instance (hard or soft).
        REBOOT_INSTANCE: cast_to_host reboot_instance(request: RebootInstance);
        /// Stops an instance, keeping its disk.
        STOP_INSTANCE: cast_to_host stop_instance(instance: InstanceRef);
        /// Starts a stopped instance, resized first to the type it has
        /// now; replies once it runs, or `InsufficientInstanceCapacity`
        /// when this host has no room for its new type (it stays stopped).
        START_INSTANCE: call_to_host start_instance(request: StartInstance);
        /// The tail of an instance's console log.
        GET_CONSOLE_OUTPUT: call_to_host get_console_output(instance: InstanceRef) -> String;
        /// A security group's rules or members changed: every host re-applies
        /// the chains of its instances in (or allowed by) the group.
        REFRESH_SECURITY_GROUP: fanout_cast refresh_security_group(update: SecurityGroupUpdate);
        /// Replaces an instance's security groups and re-applies its
        /// filters; `InstanceNotFound` when the host has no filters for it.
        SET_INSTANCE_GROUPS: call_to_host set_instance_groups(request: InstanceGroups);
        /// Turns an instance's source/destination check on or off and
        /// re-applies its filters; `InstanceNotFound` when the host has no
        /// filters for it.
        SET_SOURCE_DEST_CHECK: call_to_host set_source_dest_check(request: SourceDestCheck);
        /// Stops or resumes taking new instances (`stratus service
        /// disable|enable`); the reply is the report the host sent the
        /// schedulers right after.
        SET_HOST_ENABLED: call_to_host set_host_enabled(request: SetHostEnabled) -> HostReport;
    }
}
