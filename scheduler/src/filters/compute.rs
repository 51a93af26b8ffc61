//! Keeps hosts an operator has not disabled.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// Hosts that take new instances (`stratus service disable` turns one off).
#[derive(Debug)]
pub struct ComputeFilter;

impl Filter for ComputeFilter {
    fn name(&self) -> &'static str {
        "ComputeFilter"
    }

    fn passes(&self, host: &HostReport, _spec: &RequestSpec<'_>) -> bool {
        host.enabled
    }
}
