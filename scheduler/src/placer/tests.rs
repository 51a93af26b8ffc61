//! Placement through each driver, against in-memory host reports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stratus_rpc::wire::compute::RunInstance;

use super::*;
use crate::config::{DriverKind, FilterKind, Weigher};
use stratus_test_support::fixtures::{host_report as report, sized_instance as instance};

fn placer(driver: DriverKind, hosts: &[HostReport]) -> (Placer, Instant) {
    let config = SchedulerConfig {
        driver,
        ..SchedulerConfig::default()
    };
    placer_with(config, hosts)
}

fn placer_with(config: SchedulerConfig, hosts: &[HostReport]) -> (Placer, Instant) {
    let placer = Placer::new(&config);
    let now = Instant::now();
    for h in hosts {
        placer.update_host(h.clone(), now);
    }
    (placer, now)
}

fn place(placer: &Placer, inst: &RunInstance, now: Instant) -> Result<Placed, NoValidHost> {
    let spec = RequestSpec::new(inst, false).expect("spec");
    placer.place(&spec, now)
}

fn counts(placer: &Placer, inst: &RunInstance, n: usize, now: Instant) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let placed = place(placer, inst, now).expect("placed");
        *counts.entry(placed.host.to_string()).or_default() += 1;
    }
    counts
}

#[test]
fn no_host_up_is_no_valid_host_for_every_driver() {
    for driver in [
        DriverKind::Chance,
        DriverKind::Zone,
        DriverKind::Simple,
        DriverKind::Filter,
    ] {
        let (p, now) = placer(driver, &[report("a", "nova", 2, 2048)]);
        let later = now + Duration::from_secs(61);
        let err = place(&p, &instance(1, 256, 1), later).expect_err("a is down");
        assert_eq!(err, NoValidHost::NoneUp(60));
        assert!(
            err.to_string().starts_with("No valid host was found."),
            "{err}"
        );
        let (p, now) = placer(driver, &[]);
        assert_eq!(
            place(&p, &instance(1, 256, 1), now),
            Err(NoValidHost::NoneUp(60))
        );
    }
}

#[test]
fn chance_picks_any_up_host_and_ignores_the_zone() {
    let (p, now) = placer(
        DriverKind::Chance,
        &[
            report("a", "east", 64, 1 << 20),
            report("b", "west", 64, 1 << 20),
        ],
    );
    let mut inst = instance(1, 256, 1);
    inst.placement.availability_zone = Some("east".into());
    let seen = counts(&p, &inst, 200, now);
    assert_eq!(seen.len(), 2, "both hosts chosen over 200 tries: {seen:?}");
}

#[test]
fn zone_picks_a_host_in_the_zone_and_fails_for_an_empty_zone() {
    let (p, now) = placer(
        DriverKind::Zone,
        &[
            report("a", "east", 64, 1 << 20),
            report("b", "west", 64, 1 << 20),
            report("c", "west", 64, 1 << 20),
        ],
    );
    let mut inst = instance(1, 256, 1);
    inst.placement.availability_zone = Some("west".into());
    let seen = counts(&p, &inst, 100, now);
    assert_eq!(seen.get("a"), None);
    assert_eq!(seen.len(), 2, "{seen:?}");

    inst.placement.availability_zone = Some("north".into());
    let err = place(&p, &inst, now).expect_err("no host in north");
    assert_eq!(
        err.to_string(),
        "No valid host was found. Filters removed every host: RetryFilter 3 → 3, ComputeFilter 3 → 3, AvailabilityZoneFilter 3 → 0."
    );
}

#[test]
fn simple_fills_the_least_loaded_host_first() {
    let mut busy = report("busy", "nova", 8, 8192);
    busy.vcpus_used = 4;
    let idle = report("idle", "nova", 8, 8192);
    let (p, now) = placer(DriverKind::Simple, &[busy, idle]);
    let inst = instance(1, 512, 1);
    // idle takes four before busy is as loaded, then they alternate.
    let first: Vec<String> = (0..4)
        .map(|_| place(&p, &inst, now).expect("placed").host.to_string())
        .collect();
    assert_eq!(first, ["idle"; 4]);
    let next = counts(&p, &inst, 4, now);
    assert_eq!(next.get("idle"), Some(&2));
    assert_eq!(next.get("busy"), Some(&2));
}

#[test]
fn simple_refuses_a_host_without_room() {
    let (p, now) = placer(DriverKind::Simple, &[report("a", "nova", 1, 1024)]);
    // 1024 MiB × 1.5 = 1536 MiB may be handed out.
    let inst = instance(1, 1024, 1);
    place(&p, &inst, now).expect("first fits");
    let err = place(&p, &inst, now).expect_err("second does not");
    assert!(err.to_string().contains("RamFilter 1 → 0"), "{err}");
}

#[test]
fn the_filter_driver_spreads_by_free_ram_and_packs_when_asked() {
    let hosts: Vec<HostReport> = (0..4)
        .map(|i| report(&format!("h{i}"), "nova", 16, 16384))
        .collect();
    let (p, now) = placer(DriverKind::Filter, &hosts);
    let spread = counts(&p, &instance(1, 512, 1), 100, now);
    assert_eq!(
        spread.values().copied().collect::<Vec<_>>(),
        [25; 4],
        "{spread:?}"
    );

    let config = SchedulerConfig {
        weigher: Weigher::Pack,
        ..SchedulerConfig::default()
    };
    let (p, now) = placer_with(config, &hosts);
    // 16384 MiB × 1.5 / 512 = 48 fit on a host; packing fills one first.
    let packed = counts(&p, &instance(1, 512, 1), 48, now);
    assert_eq!(packed.len(), 1, "{packed:?}");
    let next = place(&p, &instance(1, 512, 1), now).expect("placed");
    assert!(
        !packed.contains_key(next.host.as_str()),
        "the full host was passed over"
    );
}

#[test]
fn one_request_does_not_over_commit_a_host() {
    // Two hosts with room for three 1 GiB instances each (2 GiB × 1.5).
    let hosts = [report("a", "nova", 8, 2048), report("b", "nova", 8, 2048)];
    let (p, now) = placer(DriverKind::Filter, &hosts);
    let inst = instance(1, 1024, 1);
    let seen = counts(&p, &inst, 6, now);
    assert_eq!(seen.get("a"), Some(&3));
    assert_eq!(seen.get("b"), Some(&3));
    let err = place(&p, &inst, now).expect_err("both full");
    assert!(err.to_string().contains("RamFilter 2 → 0"), "{err}");
    // A fresh report from a host that freed room makes it a candidate again.
    p.update_host(report("a", "nova", 8, 2048), now);
    assert_eq!(place(&p, &inst, now).expect("placed").host.as_str(), "a");
}

#[test]
fn the_limits_are_capacity_times_the_allocation_ratios() {
    let (p, now) = placer(DriverKind::Filter, &[report("a", "nova", 4, 2048)]);
    let placed = place(&p, &instance(1, 256, 1), now).expect("placed");
    assert_eq!(
        placed.limits,
        Limits {
            vcpus: 64,
            memory_mb: 3072,
            disk_gb: 100
        }
    );
}

#[test]
fn a_reschedule_lands_on_a_host_not_yet_tried() {
    for driver in [
        DriverKind::Chance,
        DriverKind::Zone,
        DriverKind::Simple,
        DriverKind::Filter,
    ] {
        let hosts = [
            report("a", "nova", 8, 8192),
            report("b", "nova", 8, 8192),
            report("c", "nova", 8, 8192),
        ];
        let (p, now) = placer(driver, &hosts);
        let mut inst = instance(1, 256, 1);
        for _ in 0..3 {
            let placed = place(&p, &inst, now).expect("placed");
            assert!(
                !inst.placement.hosts_tried.contains(&placed.host),
                "{driver:?} retried {}",
                placed.host
            );
            inst.placement.hosts_tried.push(placed.host);
            inst.placement.failures.push("hypervisor: boom".into());
        }
        let mut tried: Vec<String> = inst
            .placement
            .hosts_tried
            .iter()
            .map(ToString::to_string)
            .collect();
        tried.sort();
        assert_eq!(tried, ["a", "b", "c"]);
    }
}

#[test]
fn max_attempts_ends_in_error_with_the_last_failure() {
    let hosts: Vec<HostReport> = (0..5)
        .map(|i| report(&format!("h{i}"), "nova", 8, 8192))
        .collect();
    let (p, now) = placer(DriverKind::Filter, &hosts);
    let mut inst = instance(1, 256, 1);
    for attempt in 0..3 {
        let placed = place(&p, &inst, now).expect("placed");
        inst.placement.hosts_tried.push(placed.host);
        inst.placement.failures.push(format!("failure {attempt}"));
    }
    let err = place(&p, &inst, now).expect_err("three attempts used");
    assert_eq!(
        err.to_string(),
        format!(
            "No valid host was found. Exceeded max scheduling attempts 3 for instance {}; last failure: failure 2",
            inst.instance_id.ec2_id()
        )
    );
}

#[test]
fn a_forced_host_is_for_admins_and_must_be_up() {
    let hosts = [report("a", "nova", 8, 8192), report("b", "nova", 8, 8192)];
    let (p, now) = placer(DriverKind::Filter, &hosts);
    let mut inst = instance(1, 256, 1);
    inst.placement.availability_zone = Some("nova:b".into());
    assert_eq!(
        RequestSpec::new(&inst, false).expect_err("not admin"),
        NoValidHost::Forbidden
    );
    let spec = RequestSpec::new(&inst, true).expect("admin");
    for _ in 0..10 {
        assert_eq!(p.place(&spec, now).expect("placed").host.as_str(), "b");
    }
    inst.placement.availability_zone = Some("nova:gone".into());
    let spec = RequestSpec::new(&inst, true).expect("admin");
    assert_eq!(
        p.place(&spec, now),
        Err(NoValidHost::ForcedHostDown("gone".parse().expect("host")))
    );
    inst.placement.availability_zone = Some("nova:bad host!".into());
    assert!(matches!(
        RequestSpec::new(&inst, true),
        Err(NoValidHost::BadForcedHost(_))
    ));
}

#[test]
fn a_disabled_host_gets_no_work_from_any_driver() {
    for driver in [
        DriverKind::Chance,
        DriverKind::Zone,
        DriverKind::Simple,
        DriverKind::Filter,
    ] {
        let mut off = report("off", "nova", 64, 1 << 20);
        off.enabled = false;
        off.disabled_reason = Some("maintenance".into());
        let (p, now) = placer(driver, &[off, report("on", "nova", 1, 4096)]);
        let seen = counts(&p, &instance(1, 256, 1), 10, now);
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["on"], "{driver:?}");
    }
}

#[test]
fn filters_can_be_chosen_in_config() {
    let config = SchedulerConfig {
        filters: vec![FilterKind::AvailabilityZoneFilter],
        ..SchedulerConfig::default()
    };
    // Without the RAM filter a full host still passes (its claim refuses it).
    let mut full = report("full", "nova", 1, 256);
    full.memory_mb_used = 256;
    let (p, now) = placer_with(config, &[full]);
    assert_eq!(
        place(&p, &instance(1, 512, 1), now)
            .expect("placed")
            .host
            .as_str(),
        "full"
    );
}

#[test]
fn concurrent_requests_do_not_over_commit_a_host() {
    // Room for 3 × 1 GiB on each of two hosts; eight threads ask for 40.
    let hosts = [report("a", "nova", 64, 2048), report("b", "nova", 64, 2048)];
    let (p, now) = placer(DriverKind::Filter, &hosts);
    let placed: Vec<Placed> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .filter_map(|_| place(&p, &instance(1, 1024, 1), now).ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("thread"))
            .collect()
    });
    assert_eq!(placed.len(), 6, "{placed:?}");
    for (report, _) in p.hosts(now) {
        assert_eq!(report.memory_mb_used, 3072, "{}", report.host);
    }
}
