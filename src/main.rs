//! The `stratus` binary: parse arguments, load the configuration, hand over
//! to the library, and turn its errors into a message and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use stratus::cli::{Cli, Command, ConfigCommand, CredentialsCommand, ImageCommand, ServiceCommand};
use stratus::config;
use stratus::services::{self, Service};
use stratus_rpc::error::error_chain;

/// Exit code for a configuration error (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// Exit code for any other failure.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(cli.config.clone()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("stratus: {}", error_chain(&e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let shipped = match init_logging(&config, &cli.command) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("stratus: {}", error_chain(&e));
            return ExitCode::from(match e {
                stratus::logging::LogError::Filter { .. } => EXIT_CONFIG,
                stratus::logging::LogError::File { .. } => EXIT_FAILURE,
            });
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stratus: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli.command, &config, shipped)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stratus: {}", error_chain(e.as_ref()));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The file given, else the default path if it exists, else the defaults.
fn load_config(given: Option<PathBuf>) -> Result<config::Config, config::ConfigError> {
    let (path, required) = match given {
        Some(path) => (path, true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    config::load(&path, required)
}

/// Starts logging for `command`; the log lines to ship, for a compute
/// worker on the broker.
fn init_logging(
    config: &config::Config,
    command: &Command,
) -> Result<Option<LogLines>, stratus::logging::LogError> {
    let mut log = config.log.clone();
    if matches!(command, Command::Bench(_)) {
        // A benchmark's output is its figures; per-request logs would drown them.
        log.filter = "warn,lapin=off".to_owned();
    }
    // A compute worker on the broker also publishes its log lines for
    // `stratus tail`.
    let ship = matches!(command, Command::Compute)
        && config.rpc.backend == stratus_rpc::config::Backend::Amqp;
    let Command::AllInOne { verbose, .. } = command else {
        return stratus::logging::init(&log, ship, stratus::logging::Outputs::STDERR);
    };
    // The all-in-one's terminal is for its progress and result: the
    // services' lines go to a file, and to stderr too only when asked.
    let file = stratus::logging::all_in_one_log(&config.node.state_dir);
    let lines = stratus::logging::init(
        &log,
        ship,
        stratus::logging::Outputs {
            stderr: *verbose,
            file: Some(&file),
        },
    )?;
    let also = if *verbose {
        "shown here too"
    } else {
        "-v shows them here too"
    };
    println!("stratus: service logs go to {} ({also})", file.display());
    Ok(lines)
}

type LogLines = tokio::sync::mpsc::Receiver<String>;

/// Runs `command`.
async fn run(
    command: Command,
    config: &config::Config,
    shipped: Option<LogLines>,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Api => services::run(config, &[Service::Api]).await?,
        Command::Scheduler => services::run(config, &[Service::Scheduler]).await?,
        Command::Compute => {
            if let Some(lines) = shipped {
                let host = config.node.host_name()?;
                tokio::spawn(stratus_rpc::logs::ship(config.rpc.clone(), host, lines));
            }
            services::run(config, &[Service::Compute]).await?
        }
        Command::Network => services::run(config, &[Service::Network]).await?,
        Command::AllInOne {
            host_network,
            no_demo,
            ..
        } => services::all_in_one(config, host_network, !no_demo).await?,
        Command::Bench(bench) => stratus::bench::command::run(config, bench).await?,
        Command::Config(ConfigCommand::Show) => {
            print!("{}", toml::to_string_pretty(config)?);
        }
        operator => operate(config, operator).await?,
    }
    Ok(())
}

/// The operator commands: hosts, logs, consoles, credentials and images.
async fn operate(
    config: &config::Config,
    command: Command,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Tail {
            host,
            all,
            instance,
            level,
        } => {
            stratus::admin::tail(config, host.as_deref(), all, instance.as_deref(), &level).await?
        }
        Command::Service(service) => operate_service(config, service).await?,
        Command::Console {
            instance_id,
            follow,
        } => stratus::admin::console(config, &instance_id, follow).await?,
        Command::Credentials(CredentialsCommand::Create {
            project,
            user,
            admin,
            profile,
        }) => {
            let out = stratus::admin::create_credentials(
                config,
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
                config,
                &name,
                &file,
                kernel.as_deref(),
                ramdisk.as_deref(),
            )
            .await?;
            print!("{out}");
        }
        // The services, benches and `config` are run by `run`.
        _ => {}
    }
    Ok(())
}

/// `stratus service list | enable | disable`.
async fn operate_service(
    config: &config::Config,
    command: ServiceCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        ServiceCommand::Disable { host, reason } => {
            let report = stratus::admin::set_host_enabled(config, &host, false, reason).await?;
            println!(
                "{}: disabled{}; instances there keep running, new ones go elsewhere",
                report.host,
                report
                    .disabled_reason
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        ServiceCommand::List => {
            print!("{}", stratus::admin::service_list(config).await?);
        }
        ServiceCommand::Enable { host } => {
            let report = stratus::admin::set_host_enabled(config, &host, true, None).await?;
            println!("{}: enabled; it takes new instances", report.host);
        }
    }
    Ok(())
}
