//! The scheduler's methods (topic `scheduler`).

use crate::declare::declare_service;
use crate::wire::scheduler::{HostReport, HostStatus, ScheduleRunInstances};

declare_service! {
    /// The topic the scheduler serves.
    topic "scheduler";
    /// Talks to the schedulers.
    client SchedulerClient;
    /// What a scheduler does for the api and the compute hosts.
    api SchedulerApi;
    methods {
        /// Places instances on hosts and casts them to the chosen workers.
        RUN_INSTANCE: cast run_instance(request: ScheduleRunInstances);
        /// A compute host's capacity and usage, told to every scheduler
        /// (doubles as a heartbeat).
        UPDATE_HOST: fanout_cast update_host(report: HostReport);
        /// Every host one scheduler knows, by name.
        LIST_HOSTS: call list_hosts() -> Vec<HostStatus>;
    }
}
