//! `stratus bench <name>`: the subcommands, each with its bench's options,
//! and their runs.

use clap::Subcommand;

use crate::config::Config;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// RPC round trips and cast throughput against the bare lapin round trip,
    /// on the broker in `[rpc] url`.
    Rpc(super::rpc::Options),
    /// Firewall apply times for 1, 100 and 1000 instances (whole-table
    /// restore in a scratch network namespace; needs root) and concurrent
    /// fixed IP allocations.
    Firewall(super::firewall::Options),
    /// One guest from run_instance to domain RUNNING on libvirt (TCG, in a
    /// scratch namespace; needs root), by step, against a bare QEMU start.
    Spawn(super::spawn::Options),
    /// Key injection into one disk by each path this host has, and a config
    /// drive build (needs root).
    Inject(super::inject::Options),
    /// Placement decisions per second with the filter scheduler over
    /// simulated hosts: in the placer alone and through RPC in process.
    Scheduler(super::scheduler::Options),
    /// One guest from RunInstances to its boot marker through every
    /// service on real libvirt (scratch namespace; needs root), against a
    /// bare QEMU boot of the same files, and the time to the first SSH.
    Boot(super::boot::Options),
    /// The EC2 API with signatures checked: DescribeInstances over 10,000
    /// instances and RunInstances on fake hypervisors, in one process.
    Api(super::api::Options),
    /// RunInstances to running at scale over RabbitMQ: 1,000 instances on
    /// 100 fake-driver compute workers, every service its own process;
    /// instances per second, time to running, each service's peak RSS.
    Scale(super::scale::Sizes),
    /// Hosts fake-driver compute workers for `bench scale` (started by it).
    #[command(hide = true)]
    ScaleWorkers(super::scale::workers::HostRange),
}

/// A bench failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// One of the benches in this process failed.
    #[error(transparent)]
    Bench(#[from] super::BenchError),
    /// The scale bench, or a worker process of it, failed.
    #[error(transparent)]
    Scale(#[from] super::scale::ScaleError),
}

/// Runs the bench `bench` names with its options; `config` gives the
/// broker and the services' settings.
pub async fn run(config: &Config, bench: Bench) -> Result<(), CommandError> {
    match bench {
        Bench::Rpc(options) => super::rpc::run(&config.rpc, options).await?,
        Bench::Firewall(options) => super::firewall::run(&options).await?,
        Bench::Spawn(options) => super::spawn::run(&options).await?,
        Bench::Inject(options) => super::inject::run(&options).await?,
        Bench::Boot(options) => super::boot::run(config, options).await?,
        Bench::Api(options) => super::api::run(options).await?,
        Bench::Scale(sizes) => super::scale::run(config, (&sizes).into()).await?,
        Bench::ScaleWorkers(range) => {
            super::scale::workers::serve(config, range.first, range.count).await?
        }
        Bench::Scheduler(options) => super::scheduler::run(&config.scheduler, options).await?,
    }
    Ok(())
}
