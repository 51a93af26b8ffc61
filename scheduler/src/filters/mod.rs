//! Host filters: each one keeps the hosts that can take an instance.

mod image;
mod predicate;
mod resources;

pub use image::ImagePropertiesFilter;
pub use predicate::{AVAILABILITY_ZONE, COMPUTE, Predicate, RETRY};
pub use resources::{Resource, ResourceFilter};

use stratus_rpc::wire::scheduler::HostReport;

use crate::config::{FilterKind, SchedulerConfig};
use crate::error::FilterStep;
use crate::request::RequestSpec;

/// Decides whether one host can take one instance.
pub trait Filter: Send + Sync + std::fmt::Debug {
    /// Its name, for the reason given when no host passes.
    fn name(&self) -> &'static str;
    /// Whether `host` passes for `spec`.
    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool;
}

/// The filter `kind`, with the ratios it needs from `config`.
pub fn build(kind: FilterKind, config: &SchedulerConfig) -> Box<dyn Filter> {
    match kind {
        FilterKind::AvailabilityZoneFilter => Box::new(AVAILABILITY_ZONE),
        FilterKind::RamFilter => resource(Resource::Ram, config.ram_allocation_ratio),
        FilterKind::CoreFilter => resource(Resource::Cores, config.cpu_allocation_ratio),
        FilterKind::DiskFilter => resource(Resource::Disk, config.disk_allocation_ratio),
        FilterKind::ComputeFilter => Box::new(COMPUTE),
        FilterKind::ImagePropertiesFilter => Box::new(ImagePropertiesFilter),
    }
}

fn resource(resource: Resource, ratio: f64) -> Box<dyn Filter> {
    Box::new(ResourceFilter { resource, ratio })
}

/// Runs `filters` in order over `hosts`, noting how many each let through.
/// Stops early when none is left.
pub fn run<'h>(
    filters: &[Box<dyn Filter>],
    mut hosts: Vec<&'h HostReport>,
    spec: &RequestSpec<'_>,
) -> Result<Vec<&'h HostReport>, Vec<FilterStep>> {
    let mut steps = Vec::with_capacity(filters.len());
    for filter in filters {
        let before = hosts.len();
        hosts.retain(|h| filter.passes(h, spec));
        steps.push(FilterStep {
            filter: filter.name(),
            before,
            after: hosts.len(),
        });
        if hosts.is_empty() {
            return Err(steps);
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_test_support::fixtures::{host_report as report, sized_instance as instance};

    #[test]
    fn the_steps_say_which_filter_removed_the_last_host() {
        let config = SchedulerConfig::default();
        let filters: Vec<Box<dyn Filter>> = vec![
            build(FilterKind::ComputeFilter, &config),
            build(FilterKind::RamFilter, &config),
            build(FilterKind::CoreFilter, &config),
        ];
        let small = report("small", "nova", 4, 512);
        let big = report("big", "nova", 4, 8192);
        let mut disabled = report("off", "nova", 4, 8192);
        disabled.enabled = false;
        let hosts = vec![&small, &big, &disabled];

        let one_gb = instance(1, 1024, 1);
        let spec = RequestSpec::new(&one_gb, false).expect("spec");
        let passed = run(&filters, hosts.clone(), &spec).expect("big fits");
        assert_eq!(passed.len(), 1);
        assert_eq!(passed[0].host.as_str(), "big");

        let huge = instance(1, 64 * 1024, 1);
        let spec = RequestSpec::new(&huge, false).expect("spec");
        let steps = run(&filters, hosts, &spec).expect_err("nothing fits");
        assert_eq!(
            steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["ComputeFilter 3 → 2", "RamFilter 2 → 0"]
        );
    }
}
