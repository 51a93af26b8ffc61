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

/// One `instanceTypeSet` item.
fn instance_type(x: &mut Xml, t: &InstanceType) {
    x.text("instanceType", &t.name)
        .value("currentGeneration", true)
        .value("freeTierEligible", false);
    x.list("supportedUsageClasses", ["on-demand"], |x, c| {
        x.out_text(c);
    });
    x.list("supportedRootDeviceTypes", ["instance-store"], |x, c| {
        x.out_text(c);
    });
    x.list("supportedVirtualizationTypes", ["hvm"], |x, c| {
        x.out_text(c);
    });
    x.value("bareMetal", false);
    x.open("processorInfo");
    x.list("supportedArchitectures", ["x86_64"], |x, c| {
        x.out_text(c);
    });
    x.close("processorInfo");
    x.open("vCpuInfo")
        .value("defaultVCpus", t.vcpus)
        .value("defaultCores", t.vcpus)
        .value("defaultThreadsPerCore", 1)
        .close("vCpuInfo");
    x.open("memoryInfo")
        .value("sizeInMiB", t.memory_mb)
        .close("memoryInfo");
    x.value("instanceStorageSupported", t.root_gb > 0);
    if t.root_gb > 0 {
        x.open("instanceStorageInfo")
            .value("totalSizeInGB", t.root_gb)
            .close("instanceStorageInfo");
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
    let wanted = filters::parse(
        cx.params,
        &[
            "instance-type",
            "vcpu-info.default-vcpus",
            "memory-info.size-in-mib",
        ],
    )?;
    let types: Vec<_> = config
        .instance_types
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .filter(|t| {
            filters::matches(&wanted, &[], |n| match n {
                "instance-type" => vec![t.name.clone()],
                "vcpu-info.default-vcpus" => vec![t.vcpus.to_string()],
                "memory-info.size-in-mib" => vec![t.memory_mb.to_string()],
                _ => vec![],
            })
        })
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
