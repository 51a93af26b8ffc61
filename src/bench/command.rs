//! `stratus bench <name>`: from the command line's sizes to the bench's
//! own options, and its run.

use std::time::Duration;

use crate::cli::Bench;
use crate::config::Config;

/// Runs the bench `bench` names with its sizes; `config` gives the broker
/// and the services' settings.
pub async fn run(config: &Config, bench: Bench) -> Result<(), Box<dyn std::error::Error>> {
    match bench {
        Bench::Rpc(sizes) => {
            let options = super::rpc::Options {
                calls: sizes.calls,
                concurrency: sizes.concurrency,
                casts: sizes.casts,
            };
            super::rpc::run(&config.rpc, options).await?;
        }
        Bench::Firewall(sizes) => super::firewall::run(sizes.allocations).await?,
        Bench::Spawn(sizes) => super::spawn::run(&sizes.builder, sizes.runs).await?,
        Bench::Inject(sizes) => super::inject::run(&sizes.builder, sizes.runs).await?,
        Bench::Boot(sizes) => {
            let options = super::boot::Options {
                runs: sizes.runs,
                builder: sizes.builder,
            };
            super::boot::run(config, options).await?;
        }
        Bench::Api(sizes) => {
            super::api::run(super::api::Options {
                instances: sizes.instances,
                runs: sizes.runs,
                concurrency: sizes.concurrency,
            })
            .await?;
        }
        Bench::Scale(sizes) => {
            let options = super::scale::Options {
                workers: sizes.workers,
                instances: sizes.instances,
                per_request: sizes.per_request,
                concurrency: sizes.concurrency,
                workers_per_process: sizes.workers_per_process,
                report_interval: Duration::from_secs(sizes.report_interval_secs),
                poll_interval: Duration::from_millis(sizes.poll_ms),
                timeout: Duration::from_secs(sizes.timeout_secs),
            };
            super::scale::run(config, options).await?;
        }
        Bench::ScaleWorkers(hosted) => {
            super::scale::workers::serve(config, hosted.first, hosted.count).await?;
        }
        Bench::Scheduler(sizes) => {
            let options = super::scheduler::Options {
                hosts: sizes.hosts,
                instances: sizes.instances,
                per_request: sizes.per_request,
            };
            super::scheduler::run(&config.scheduler, options).await?;
        }
    }
    Ok(())
}
