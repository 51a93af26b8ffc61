//! Keeps hosts the instance has not been tried on.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// Hosts not yet tried for this instance: a host that failed a build is not
/// handed the same instance again.
#[derive(Debug)]
pub struct RetryFilter;

impl Filter for RetryFilter {
    fn name(&self) -> &'static str {
        "RetryFilter"
    }

    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool {
        !spec.hosts_tried().contains(&host.host)
    }
}
