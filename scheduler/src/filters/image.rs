//! Keeps hosts that can run the image: its architecture and hypervisor.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// Hosts matching the image's `architecture` and `hypervisor_type`, where
/// the image sets them.
#[derive(Debug)]
pub struct ImagePropertiesFilter;

/// A KVM host also runs what was built for plain QEMU; the reverse is not true.
fn hypervisor_runs(host: &str, wanted: &str) -> bool {
    host.eq_ignore_ascii_case(wanted) || (host == "kvm" && wanted.eq_ignore_ascii_case("qemu"))
}

impl Filter for ImagePropertiesFilter {
    fn name(&self) -> &'static str {
        "ImagePropertiesFilter"
    }

    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool {
        let wanted = &spec.instance.image.properties;
        wanted
            .architecture
            .as_deref()
            .is_none_or(|a| host.architecture.eq_ignore_ascii_case(a))
            && wanted
                .hypervisor_type
                .as_deref()
                .is_none_or(|h| hypervisor_runs(&host.hypervisor_type, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_test_support::fixtures::{host_report as report, sized_instance as instance};

    #[test]
    fn architecture_and_hypervisor_must_match_when_the_image_sets_them() {
        let mut kvm = report("a", "nova", 2, 2048);
        kvm.hypervisor_type = "kvm".into();
        kvm.architecture = "x86_64".into();
        let mut arm = report("b", "nova", 2, 2048);
        arm.hypervisor_type = "qemu".into();
        arm.architecture = "aarch64".into();

        let mut inst = instance(1, 256, 1);
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(ImagePropertiesFilter.passes(&kvm, &spec));
        assert!(ImagePropertiesFilter.passes(&arm, &spec));

        inst.image.properties.architecture = Some("aarch64".into());
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(!ImagePropertiesFilter.passes(&kvm, &spec));
        assert!(ImagePropertiesFilter.passes(&arm, &spec));

        inst.image.properties.architecture = None;
        inst.image.properties.hypervisor_type = Some("qemu".into());
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(
            ImagePropertiesFilter.passes(&kvm, &spec),
            "kvm runs qemu images"
        );
        inst.image.properties.hypervisor_type = Some("kvm".into());
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(!ImagePropertiesFilter.passes(&arm, &spec));
    }
}
