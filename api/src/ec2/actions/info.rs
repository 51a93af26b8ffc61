//! What the cloud offers: zones, regions, instance types, account attributes.

use std::time::Duration;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::xml::Xml;
use super::super::{Ctx, all_found};
use crate::config::InstanceType;

/// How long the scheduler's answer about zones is reused.
const ZONES_TTL: Duration = Duration::from_secs(10);

/// The zones of the compute hosts up now, as the scheduler sees them (asked
/// at most every ten seconds); the last answer when it cannot be asked, and
/// `nova` before any.
pub async fn zones(cx: &Ctx<'_>) -> Vec<String> {
    let lock = || {
        cx.cloud
            .zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    {
        let cached = lock();
        if cached.asked.is_some_and(|at| at.elapsed() < ZONES_TTL) && !cached.names.is_empty() {
            return cached.names.clone();
        }
    }
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        cx.cloud.scheduler.list_hosts(&cx.rpc_context()),
    )
    .await;
    let mut cached = lock();
    if let Ok(Ok(hosts)) = asked {
        let mut found: Vec<String> = hosts
            .into_iter()
            .filter(|h| h.up)
            .map(|h| h.report.availability_zone)
            .collect();
        found.sort();
        found.dedup();
        if !found.is_empty() {
            cached.names = found;
            cached.asked = Some(std::time::Instant::now());
        }
    }
    if cached.names.is_empty() {
        vec!["nova".to_owned()]
    } else {
        cached.names.clone()
    }
}

/// DescribeAvailabilityZones.
pub async fn describe_availability_zones(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let names = cx.params.list("ZoneName")?;
    let wanted = filters::parse(cx.params, &["zone-name", "state", "region-name"])?;
    let all = zones(cx).await;
    for name in &names {
        if !all.contains(name) {
            return Err(Ec2Error::invalid(format!(
                "The zone '{}' does not exist.",
                shown(name)
            )));
        }
    }
    let region = cx.cloud.config.region.clone();
    let shown_zones: Vec<&String> = all
        .iter()
        .filter(|z| names.is_empty() || names.contains(z))
        .filter(|z| {
            filters::matches(&wanted, &[], |n| match n {
                "zone-name" => vec![(*z).clone()],
                "state" => vec!["available".into()],
                "region-name" => vec![region.clone()],
                _ => vec![],
            })
        })
        .collect();
    let mut x = cx.response();
    x.list("availabilityZoneInfo", shown_zones, |x, z| {
        x.text("zoneName", z)
            .text("zoneState", "available")
            .text("regionName", &region)
            .text("zoneId", z)
            .text("zoneType", "availability-zone")
            .text("optInStatus", "opt-in-not-required")
            .open("messageSet")
            .close("messageSet");
    });
    Ok(cx.finish(x))
}

/// DescribeRegions: the one region this cloud is.
pub async fn describe_regions(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let names = cx.params.list("RegionName")?;
    let region = &cx.cloud.config.region;
    if let Some(other) = names.iter().find(|n| *n != region) {
        return Err(Ec2Error::invalid(format!(
            "Invalid region: {}",
            shown(other)
        )));
    }
    let mut x = cx.response();
    x.list("regionInfo", [()], |x, ()| {
        x.text("regionName", region)
            .text("regionEndpoint", &cx.cloud.config.endpoint)
            .text("optInStatus", "opt-in-not-required");
    });
    Ok(cx.finish(x))
}

/// `name` listing `values` as `<item>` texts.
fn texts(x: &mut Xml, name: &str, values: &[&str]) {
    x.list(name, values, |x, v| {
        x.out_text(v);
    });
}

/// One `instanceTypeSet` item, with what botocore's `InstanceTypeInfo`
/// holds and amazon.aws or Terraform read: the flavour's vCPUs (one thread
/// per core, as guests get them), memory and root disk, and what a guest
/// on QEMU/KVM here can and cannot have (no EBS, no placement groups, one
/// interface with one IPv4 address, BIOS boot).
fn instance_type(x: &mut Xml, t: &InstanceType) {
    x.text("instanceType", &t.name)
        .value("currentGeneration", true)
        .value("freeTierEligible", false);
    texts(x, "supportedUsageClasses", &["on-demand"]);
    texts(x, "supportedRootDeviceTypes", &["instance-store"]);
    texts(x, "supportedVirtualizationTypes", &["hvm"]);
    x.value("bareMetal", false).text("hypervisor", "xen");
    x.open("processorInfo");
    texts(x, "supportedArchitectures", &["x86_64"]);
    x.close("processorInfo");
    x.open("vCpuInfo")
        .value("defaultVCpus", t.vcpus)
        .value("defaultCores", t.vcpus)
        .value("defaultThreadsPerCore", 1);
    x.list("validCores", 1..=t.vcpus, |x, n| {
        x.out_text(&n.to_string());
    });
    x.list("validThreadsPerCore", [1], |x, n| {
        x.out_text(&n.to_string());
    });
    x.close("vCpuInfo");
    x.open("memoryInfo")
        .value("sizeInMiB", t.memory_mb)
        .close("memoryInfo");
    x.value("instanceStorageSupported", t.root_gb > 0);
    if t.root_gb > 0 {
        x.open("instanceStorageInfo")
            .value("totalSizeInGB", t.root_gb);
        x.list("disks", [t.root_gb], |x, gb| {
            x.value("sizeInGB", gb)
                .value("count", 1)
                .text("type", "ssd");
        });
        x.text("nvmeSupport", "unsupported")
            .text("encryptionSupport", "unsupported")
            .close("instanceStorageInfo");
    }
    x.open("ebsInfo")
        .text("ebsOptimizedSupport", "unsupported")
        .text("encryptionSupport", "unsupported")
        .text("nvmeSupport", "unsupported")
        .close("ebsInfo");
    network_info(x);
    x.open("placementGroupInfo");
    texts(x, "supportedStrategies", &[]);
    x.close("placementGroupInfo");
    x.value("hibernationSupported", false)
        .value("burstablePerformanceSupported", false)
        .value("dedicatedHostsSupported", false)
        .value("autoRecoverySupported", false);
    texts(x, "supportedBootModes", &["legacy-bios"]);
    x.text("nitroEnclavesSupport", "unsupported")
        .text("nitroTpmSupport", "unsupported")
        .text("phcSupport", "unsupported")
        .value("supportedInRegion", true);
}

/// `networkInfo`: one card with one interface of one IPv4 address, no IPv6.
fn network_info(x: &mut Xml) {
    const PERFORMANCE: &str = "Moderate";
    x.open("networkInfo")
        .text("networkPerformance", PERFORMANCE)
        .value("maximumNetworkInterfaces", 1)
        .value("maximumNetworkCards", 1)
        .value("defaultNetworkCardIndex", 0);
    x.list("networkCards", [0], |x, index| {
        x.value("networkCardIndex", index)
            .text("networkPerformance", PERFORMANCE)
            .value("maximumNetworkInterfaces", 1);
    });
    x.value("ipv4AddressesPerInterface", 1)
        .value("ipv6AddressesPerInterface", 0)
        .value("ipv6Supported", false)
        .text("enaSupport", "unsupported")
        .value("efaSupported", false)
        .value("encryptionInTransitSupported", false)
        .value("enaSrdSupported", false)
        .close("networkInfo");
}

/// The DescribeInstanceTypes filters answered.
const TYPE_FILTERS: &[&str] = &[
    "instance-type",
    "vcpu-info.default-vcpus",
    "vcpu-info.default-cores",
    "vcpu-info.default-threads-per-core",
    "memory-info.size-in-mib",
    "current-generation",
    "instance-storage-supported",
    "instance-storage-info.total-size-in-gb",
    "processor-info.supported-architecture",
    "supported-root-device-type",
    "supported-virtualization-type",
    "supported-usage-class",
    "hypervisor",
    "bare-metal",
];

/// What filter `name` sees of `t` (as [`instance_type`] renders it).
fn type_values(t: &InstanceType, name: &str) -> Vec<String> {
    let one = |v: &str| vec![v.to_owned()];
    match name {
        "instance-type" => vec![t.name.clone()],
        "vcpu-info.default-vcpus" | "vcpu-info.default-cores" => vec![t.vcpus.to_string()],
        "vcpu-info.default-threads-per-core" => one("1"),
        "memory-info.size-in-mib" => vec![t.memory_mb.to_string()],
        "current-generation" => one("true"),
        "instance-storage-supported" => vec![(t.root_gb > 0).to_string()],
        "instance-storage-info.total-size-in-gb" if t.root_gb > 0 => vec![t.root_gb.to_string()],
        "processor-info.supported-architecture" => one("x86_64"),
        "supported-root-device-type" => one("instance-store"),
        "supported-virtualization-type" => one("hvm"),
        "supported-usage-class" => one("on-demand"),
        "hypervisor" => one("xen"),
        "bare-metal" => one("false"),
        _ => vec![],
    }
}

/// DescribeInstanceTypes: the configured flavors.
pub async fn describe_instance_types(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let names = cx.params.list("InstanceType")?;
    let config = &cx.cloud.config;
    all_found(
        &names,
        |name| config.instance_type(name).is_some(),
        |name| {
            Ec2Error::client(
                "InvalidInstanceType",
                format!(
                    "The following supplied instance types do not exist: [{}]",
                    shown(name)
                ),
            )
        },
    )?;
    let wanted = filters::parse(cx.params, TYPE_FILTERS)?;
    let types: Vec<_> = config
        .instance_types
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .filter(|t| filters::matches(&wanted, &[], |n| type_values(t, n)))
        .collect();
    let mut x = cx.response();
    x.list("instanceTypeSet", types, instance_type);
    Ok(cx.finish(x))
}

/// DescribeAccountAttributes: platforms (VPC only: every project has its
/// default VPC), the default VPC and limits.
pub async fn describe_account_attributes(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let names = cx.params.list("AttributeName")?;
    let quotas = &cx.cloud.config.quotas;
    let all: Vec<(&str, Vec<String>)> = vec![
        ("supported-platforms", vec!["VPC".into()]),
        (
            "default-vpc",
            vec![super::super::ids::default_vpc_id(&cx.caller.project_id)],
        ),
        ("max-instances", vec![quotas.instances.to_string()]),
        ("max-elastic-ips", vec!["0".into()]),
        (
            "vpc-max-security-groups-per-interface",
            vec![quotas.security_groups.to_string()],
        ),
    ];
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|(n, _)| names.is_empty() || names.iter().any(|w| w == n))
        .collect();
    let mut x = cx.response();
    x.list("accountAttributeSet", chosen, |x, (name, values)| {
        x.text("attributeName", name);
        x.list("attributeValueSet", values, |x, v| {
            x.text("attributeValue", &v);
        });
    });
    Ok(cx.finish(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_type_tells_its_cpus_memory_and_disk() {
        let t = InstanceType {
            name: "m1.medium".into(),
            vcpus: 2,
            memory_mb: 4096,
            root_gb: 40,
        };
        let mut x = Xml::fragment();
        instance_type(&mut x, &t);
        let out = x.into_string();
        for part in [
            "<vCpuInfo><defaultVCpus>2</defaultVCpus><defaultCores>2</defaultCores>\
             <defaultThreadsPerCore>1</defaultThreadsPerCore>\
             <validCores><item>1</item><item>2</item></validCores>\
             <validThreadsPerCore><item>1</item></validThreadsPerCore></vCpuInfo>",
            "<memoryInfo><sizeInMiB>4096</sizeInMiB></memoryInfo>",
            "<instanceStorageSupported>true</instanceStorageSupported>\
             <instanceStorageInfo><totalSizeInGB>40</totalSizeInGB>\
             <disks><item><sizeInGB>40</sizeInGB><count>1</count><type>ssd</type></item></disks>",
            "<processorInfo><supportedArchitectures><item>x86_64</item></supportedArchitectures></processorInfo>",
            "<supportedRootDeviceTypes><item>instance-store</item></supportedRootDeviceTypes>",
            "<supportedVirtualizationTypes><item>hvm</item></supportedVirtualizationTypes>",
            "<currentGeneration>true</currentGeneration>",
        ] {
            assert!(out.contains(part), "{part} not in {out}");
        }
        assert_eq!(type_values(&t, "vcpu-info.default-cores"), ["2"]);
        assert_eq!(
            type_values(&t, "instance-storage-info.total-size-in-gb"),
            ["40"]
        );
    }

    #[test]
    fn a_flavour_without_its_own_disk_has_no_instance_storage() {
        let t = InstanceType {
            name: "m1.image".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 0,
        };
        let mut x = Xml::fragment();
        instance_type(&mut x, &t);
        let out = x.into_string();
        assert!(out.contains("<instanceStorageSupported>false</instanceStorageSupported>"));
        assert!(!out.contains("instanceStorageInfo"), "{out}");
        assert!(type_values(&t, "instance-storage-info.total-size-in-gb").is_empty());
    }
}
