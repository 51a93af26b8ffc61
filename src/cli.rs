//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        /// Show the services' log lines here (stderr) too, not only in
        /// `<state_dir>/logs/all-in-one.log`.
        #[arg(long, short)]
        verbose: bool,
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
    Bench(crate::bench::command::Bench),
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

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration and print it as stratus reads it (file,
    /// defaults and STRATUS_* overrides).
    Show,
}
