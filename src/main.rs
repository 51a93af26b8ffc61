//! The `stratus` binary: parse arguments, load the configuration, hand over
//! to the library, and turn its errors into a message and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use stratus::cli::{
    Bench, Cli, Command, ConfigCommand, CredentialsCommand, ImageCommand, ServiceCommand,
};
use stratus::config;
use stratus::services::{self, Service};

/// Exit code for a configuration error (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// Exit code for any other failure.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    let config = match config::load(&path, required) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("stratus: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut log = config.log.clone();
    if matches!(cli.command, Command::Bench(_)) {
        // A benchmark's output is its figures; per-request logs would drown them.
        log.filter = "warn,lapin=off".to_owned();
    }
    // A compute worker on the broker also publishes its log lines for
    // `stratus tail`.
    let ship = matches!(cli.command, Command::Compute)
        && config.rpc.backend == stratus_rpc::config::Backend::Amqp;
    let shipped = match stratus::logging::init(&log, ship) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("stratus: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stratus: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        match cli.command {
            Command::Api => services::run(&config, &[Service::Api]).await?,
            Command::Scheduler => services::run(&config, &[Service::Scheduler]).await?,
            Command::Compute => {
                if let Some(lines) = shipped {
                    let host = config.node.host_name()?;
                    tokio::spawn(stratus_rpc::logs::ship(config.rpc.clone(), host, lines));
                }
                services::run(&config, &[Service::Compute]).await?
            }
            Command::Tail {
                host,
                all,
                instance,
                level,
            } => {
                stratus::admin::tail(&config, host.as_deref(), all, instance.as_deref(), &level)
                    .await?
            }
            Command::Network => services::run(&config, &[Service::Network]).await?,
            Command::AllInOne {
                host_network,
                no_demo,
            } => services::all_in_one(&config, host_network, !no_demo).await?,
            Command::Bench(Bench::Rpc(sizes)) => {
                let options = stratus_rpc::bench::Options {
                    calls: sizes.calls,
                    concurrency: sizes.concurrency,
                    casts: sizes.casts,
                };
                stratus_rpc::bench::run(&config.rpc, options).await?;
            }
            Command::Bench(Bench::Firewall(sizes)) => {
                stratus_network::bench::run(sizes.allocations).await?;
            }
            Command::Bench(Bench::Spawn(sizes)) => {
                stratus_compute::bench::run(&sizes.builder, sizes.runs).await?;
            }
            Command::Bench(Bench::Inject(sizes)) => {
                stratus_compute::bench::inject::run(&sizes.builder, sizes.runs).await?;
            }
            Command::Bench(Bench::Boot(sizes)) => {
                stratus::boot_bench::run(
                    &config,
                    stratus::boot_bench::Options {
                        runs: sizes.runs,
                        builder: sizes.builder,
                    },
                )
                .await?;
            }
            Command::Bench(Bench::Api(sizes)) => {
                stratus::api_bench::run(stratus::api_bench::Options {
                    instances: sizes.instances,
                    runs: sizes.runs,
                    concurrency: sizes.concurrency,
                })
                .await?;
            }
            Command::Bench(Bench::Scale(sizes)) => {
                stratus::scale_bench::run(
                    &config,
                    stratus::scale_bench::Options {
                        workers: sizes.workers,
                        instances: sizes.instances,
                        per_request: sizes.per_request,
                        concurrency: sizes.concurrency,
                        workers_per_process: sizes.workers_per_process,
                        report_interval: std::time::Duration::from_secs(sizes.report_interval_secs),
                        poll_interval: std::time::Duration::from_millis(sizes.poll_ms),
                        timeout: std::time::Duration::from_secs(sizes.timeout_secs),
                    },
                )
                .await?;
            }
            Command::Bench(Bench::ScaleWorkers(hosted)) => {
                stratus::scale_bench::workers::serve(&config, hosted.first, hosted.count).await?;
            }
            Command::Bench(Bench::Scheduler(sizes)) => {
                let options = stratus_scheduler::bench::Options {
                    hosts: sizes.hosts,
                    instances: sizes.instances,
                    per_request: sizes.per_request,
                };
                stratus_scheduler::bench::run(&config.scheduler, options).await?;
            }
            Command::Service(ServiceCommand::Disable { host, reason }) => {
                let report =
                    stratus::admin::set_host_enabled(&config, &host, false, reason).await?;
                println!(
                    "{}: disabled{}; instances there keep running, new ones go elsewhere",
                    report.host,
                    report
                        .disabled_reason
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            Command::Service(ServiceCommand::List) => {
                print!("{}", stratus::admin::service_list(&config).await?);
            }
            Command::Console {
                instance_id,
                follow,
            } => stratus::admin::console(&config, &instance_id, follow).await?,
            Command::Service(ServiceCommand::Enable { host }) => {
                let report = stratus::admin::set_host_enabled(&config, &host, true, None).await?;
                println!("{}: enabled; it takes new instances", report.host);
            }
            Command::Credentials(CredentialsCommand::Create {
                project,
                user,
                admin,
                profile,
            }) => {
                let out = stratus::admin::create_credentials(
                    &config,
                    &project,
                    &user,
                    admin,
                    profile.as_deref(),
                )
                .await?;
                print!("{out}");
            }
            Command::Image(ImageCommand::Import {
                file,
                kernel,
                ramdisk,
                name,
            }) => {
                let name = name.unwrap_or_else(|| {
                    file.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "image".into())
                });
                let out = stratus::admin::import_image(
                    &config,
                    &name,
                    &file,
                    kernel.as_deref(),
                    ramdisk.as_deref(),
                )
                .await?;
                print!("{out}");
            }
            Command::Config(ConfigCommand::Show) => {
                print!("{}", toml::to_string_pretty(&config)?);
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stratus: {}", stratus_host::error_chain(e.as_ref()));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
