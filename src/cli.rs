//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A Nova-style cloud: EC2 API, scheduler, compute workers and network
/// controller talking over AMQP.
#[derive(Debug, Parser)]
#[command(name = "stratus", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Without it, /etc/stratus/stratus.toml is
    /// read if present, else the defaults apply.
    #[arg(long, short, global = true, env = "STRATUS_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the api service: the EC2 API and the `conductor` topic.
    Api,
    /// Run the scheduler (topic `scheduler`).
    Scheduler,
    /// Run this host's compute worker (topics `compute`, `compute.<host>`).
    Compute,
    /// Run the network controller (topic `network`).
    Network,
    /// Run every service in one process over the in-process bus, then boot
    /// a demo guest and print how to SSH into it.
    AllInOne {
        /// Put the guests' bridge on the host's own network instead of the
        /// `stratus` network namespace.
        #[arg(long)]
        host_network: bool,
        /// Serve only; boot no demo guest.
        #[arg(long)]
        no_demo: bool,
    },
    /// Operate on running services' hosts (over the `[rpc]` broker).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Follow a compute worker's log lines live, from any machine that
    /// reaches the broker.
    Tail {
        /// The compute host.
        #[arg(required_unless_present = "all")]
        host: Option<String>,
        /// Every compute host.
        #[arg(long, conflicts_with = "host")]
        all: bool,
        /// Only lines about this instance (`i-…` or its UUID).
        #[arg(long)]
        instance: Option<String>,
        /// Only lines at this level or above (trace, debug, info, warn, error).
        #[arg(long, default_value = "trace")]
        level: String,
    },
    /// An instance's console log from its host (`--follow` as it grows).
    Console {
        /// The instance, `i-…`.
        instance_id: String,
        /// Keep printing what the console adds until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// Access keys for the EC2 API (on the control host's database).
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Images (on the control host's database).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Measure stratus; each benchmark prints its figures.
    #[command(subcommand)]
    Bench(Bench),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Credential commands.
#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create an access key and secret for a user of a project, and print them.
    Create {
        /// The project (the EC2 "account") the key acts in.
        #[arg(long)]
        project: String,
        /// The user it belongs to.
        #[arg(long)]
        user: String,
        /// Make it an administrator's key (may force hosts).
        #[arg(long)]
        admin: bool,
        /// Also write it as this AWS CLI profile under ~/.aws.
        #[arg(long)]
        profile: Option<String>,
    },
}

/// Image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Register a disk image (with its kernel and ramdisk) as public images
    /// every project may launch. The files stay where they are; every
    /// compute host must read the same paths.
    Import {
        /// The disk image (raw or qcow2).
        file: PathBuf,
        /// A kernel to boot directly.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Its initramfs.
        #[arg(long)]
        ramdisk: Option<PathBuf>,
        /// The image's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
}

/// Operator commands on compute hosts.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Each service up or down, and each compute host with its last
    /// report, instances and capacity.
    List,
    /// Stop placing new instances on a compute host (its instances keep
    /// running); kept across restarts of the host's worker.
    Disable {
        /// The compute host, as its worker names itself (`[node] host`).
        host: String,
        /// Why, shown with the host.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume placing new instances on a compute host.
    Enable {
        /// The compute host.
        host: String,
    },
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// RPC round trips and cast throughput against the bare lapin round trip,
    /// on the broker in `[rpc] url`.
    Rpc(RpcBench),
    /// Firewall apply times for 1, 100 and 1000 instances (whole-table
    /// restore in a scratch network namespace; needs root) and concurrent
    /// fixed IP allocations.
    Firewall(FirewallBench),
    /// One guest from run_instance to domain RUNNING on libvirt (TCG, in a
    /// scratch namespace; needs root), by step, against a bare QEMU start.
    Spawn(SpawnBench),
    /// Key injection into one disk by each path this host has, and a config
    /// drive build (needs root).
    Inject(InjectBench),
    /// Placement decisions per second with the filter scheduler over
    /// simulated hosts: in the placer alone and through RPC in process.
    Scheduler(SchedulerBench),
    /// One guest from RunInstances to its boot marker through every
    /// service on real libvirt (scratch namespace; needs root), against a
    /// bare QEMU boot of the same files, and the time to the first SSH.
    Boot(BootBench),
    /// The EC2 API with signatures checked: DescribeInstances over 10,000
    /// instances and RunInstances on fake hypervisors, in one process.
    Api(ApiBench),
    /// RunInstances to running at scale over RabbitMQ: 1,000 instances on
    /// 100 fake-driver compute workers, every service its own process;
    /// instances per second, time to running, each service's peak RSS.
    Scale(ScaleBench),
    /// Hosts fake-driver compute workers for `bench scale` (started by it).
    #[command(hide = true)]
    ScaleWorkers(ScaleWorkers),
}

/// Sizes of `stratus bench scale`.
#[derive(Debug, Args)]
pub struct ScaleBench {
    /// Compute workers (fake driver), one of them a `stratus compute` process.
    #[arg(long, default_value_t = 100)]
    pub workers: usize,
    /// Instances to launch.
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    /// Instances per RunInstances request.
    #[arg(long, default_value_t = 1)]
    pub per_request: usize,
    /// RunInstances requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Workers per hosting process (besides the measured `stratus compute`).
    #[arg(long, default_value_t = 33)]
    pub workers_per_process: usize,
    /// Seconds between each worker's capacity reports to the scheduler.
    #[arg(long, default_value_t = 1)]
    pub report_interval_secs: u64,
    /// Milliseconds between DescribeInstances polls.
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// Seconds an instance may stay pending before the run fails.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// What `stratus bench scale-workers` hosts.
#[derive(Debug, Args)]
pub struct ScaleWorkers {
    /// The number of the first host (`node-<first>`).
    #[arg(long)]
    pub first: usize,
    /// How many workers.
    #[arg(long)]
    pub count: usize,
}

/// Sizes of `stratus bench boot`.
#[derive(Debug, Args)]
pub struct BootBench {
    /// Boots of each kind (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The tiny image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-tiny-image")]
    pub builder: std::path::PathBuf,
}

/// Sizes of `stratus bench api`.
#[derive(Debug, Args)]
pub struct ApiBench {
    /// Instances DescribeInstances looks over.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// RunInstances requests (one instance each).
    #[arg(long, default_value_t = 500)]
    pub runs: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Sizes of `stratus bench scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerBench {
    /// Simulated compute hosts.
    #[arg(long, default_value_t = 1000)]
    pub hosts: usize,
    /// Instances to place.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Instances per run_instance request.
    #[arg(long, default_value_t = 100)]
    pub per_request: usize,
}

/// Sizes of `stratus bench inject`.
#[derive(Debug, Args)]
pub struct InjectBench {
    /// Injections per path (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-test-image")]
    pub builder: std::path::PathBuf,
}

/// Sizes of `stratus bench spawn`.
#[derive(Debug, Args)]
pub struct SpawnBench {
    /// Guests to spawn (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-test-image")]
    pub builder: std::path::PathBuf,
}

/// Sizes of `stratus bench firewall`.
#[derive(Debug, Args)]
pub struct FirewallBench {
    /// Concurrent allocate_fixed_ip calls.
    #[arg(long, default_value_t = 1000)]
    pub allocations: usize,
}

/// Sizes of `stratus bench rpc`.
#[derive(Debug, Args)]
pub struct RpcBench {
    /// Round trips per measurement.
    #[arg(long, default_value_t = 5000)]
    pub calls: usize,
    /// Concurrent callers in the concurrent measurements.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Casts in the concurrent throughput measurement.
    #[arg(long, default_value_t = 20000)]
    pub casts: usize,
}

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration and print it as stratus reads it (file,
    /// defaults and STRATUS_* overrides).
    Show,
}
