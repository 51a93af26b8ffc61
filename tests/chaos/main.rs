//! The chaos harness (issue 18): on real libvirt with TCG guests, a stream
//! of launches and terminates while a random piece of the cloud is SIGKILLed
//! at random moments and restarted, N times, in the embedded mode (the
//! all-in-one process) and the distributed mode (api, scheduler, network,
//! compute and the RabbitMQ broker, each a process); then every invariant
//! is checked from outside the services and the report printed. Fails on
//! any violation.
//!
//! A plain binary (`harness = false`) so that `cargo test` shows its report
//! as it runs. `STRATUS_CHAOS_SEED` replays a run's random choices (its
//! seed is printed), `STRATUS_CHAOS_KILLS` changes the number of kills
//! (default 20); a test-name argument (`embedded`, `distributed`) runs one
//! mode.

#[allow(dead_code)] // shared with the `it` binary, which uses the rest
#[path = "../it/guest_cloud.rs"]
mod guest_cloud;

mod describe;
mod distributed;
mod embedded;
mod evidence;
mod guest;
mod invariants;
mod load;
mod report;
mod run;
mod site;

use std::process::ExitCode;

use run::Settings;

/// The modes, by test name.
const MODES: [&str; 2] = ["chaos_embedded", "chaos_distributed"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for mode in MODES {
            println!("{mode}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters = filters(&args);
    let modes: Vec<&str> = MODES
        .into_iter()
        .filter(|m| filters.is_empty() || filters.iter().any(|f| m.contains(f.as_str())))
        .collect();
    if modes.is_empty() {
        return ExitCode::SUCCESS;
    }
    let settings = settings();
    println!(
        "chaos: seed {} (STRATUS_CHAOS_SEED={} replays it), {} kills per mode",
        settings.seed, settings.seed, settings.kills
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut passed = true;
    for mode in modes {
        let report = runtime.block_on(async {
            if mode == "chaos_embedded" {
                let mut site = embedded::Embedded::start().await;
                run::run(&mut site, settings).await
            } else {
                let mut site = distributed::Distributed::start().await;
                run::run(&mut site, settings).await
            }
        });
        println!("{report}");
        passed &= report.passed();
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Test-name filters among the arguments (libtest's flags, and the values
/// of those that take one, skipped).
fn filters(args: &[String]) -> Vec<String> {
    let mut filters = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--test-threads" | "--skip" | "--format" | "--color" | "-Z" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    filters
}

fn settings() -> Settings {
    let number = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
    };
    Settings {
        seed: number("STRATUS_CHAOS_SEED").unwrap_or_else(|| fastrand::u64(..)),
        kills: number("STRATUS_CHAOS_KILLS")
            .map_or(20, |k| usize::try_from(k).unwrap_or(usize::MAX)),
    }
}
