//! `stratus bench scale`: the whole launch path at scale over real
//! RabbitMQ. The api, scheduler and network controller each run as their
//! own process of this binary, one ordinary `stratus compute` on the fake
//! driver is the worker measured, and `stratus bench scale-workers`
//! processes host the other fake workers. RunInstances requests go through
//! the signed EC2 client; the figures are instances per second from the
//! first request to the last instance running, time to running per
//! instance, and each service's peak RSS. Nothing touches the machine's
//! network: fake workers run no host commands and the network controller
//! runs no dnsmasq.

mod children;
mod load;
mod report;
mod setup;
pub mod workers;

use std::time::{Duration, Instant};

use clap::Args;
use stratus_rpc::clients::SchedulerClient;
use stratus_rpc::{RequestContext, RpcClient};

use super::error::Cause;
use crate::config::Config;
use crate::ec2_client::Client;
use children::Children;
use report::Readings;

/// Sizes of `stratus bench scale`.
#[derive(Debug, Clone, Args)]
pub struct Sizes {
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

impl From<&Sizes> for Options {
    fn from(sizes: &Sizes) -> Self {
        Self {
            workers: sizes.workers,
            instances: sizes.instances,
            per_request: sizes.per_request,
            concurrency: sizes.concurrency,
            workers_per_process: sizes.workers_per_process,
            report_interval: Duration::from_secs(sizes.report_interval_secs),
            poll_interval: Duration::from_millis(sizes.poll_ms),
            timeout: Duration::from_secs(sizes.timeout_secs),
        }
    }
}

/// Sizes of the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Compute workers (hosts), one of them a `stratus compute` process.
    pub workers: usize,
    /// Instances launched.
    pub instances: usize,
    /// Instances per RunInstances request.
    pub per_request: usize,
    /// RunInstances requests in flight at once.
    pub concurrency: usize,
    /// Workers per hosting process besides the measured one.
    pub workers_per_process: usize,
    /// Pause between each worker's capacity reports.
    pub report_interval: Duration,
    /// Pause between DescribeInstances polls.
    pub poll_interval: Duration,
    /// Longest an instance may stay pending.
    pub timeout: Duration,
}

/// The benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// Preparing or starting something failed.
    #[error("bench scale: {what}")]
    Setup {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// A service exited while the bench still needed it.
    #[error("bench scale: {name} exited ({status}); its log ends:\n{log_tail}")]
    ChildExited {
        /// The child.
        name: String,
        /// How it ended.
        status: String,
        /// The last lines it wrote.
        log_tail: String,
    },
    /// The cloud did not come up in time.
    #[error("bench scale: {what} after {waited:?}")]
    NotReady {
        /// What was missing.
        what: String,
        /// How long the bench waited.
        waited: Duration,
    },
    /// An EC2 request the bench depends on failed.
    #[error("bench scale: {action}")]
    Api {
        /// The action.
        action: &'static str,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// An instance stayed pending too long.
    #[error(
        "bench scale: {pending} instances still pending, one of them {waited:?} after its request (e.g. {examples:?}; reason {reason:?})"
    )]
    Stuck {
        /// Instances not yet running.
        pending: usize,
        /// The limit.
        waited: Duration,
        /// A few of them.
        examples: Vec<String>,
        /// The state reason of the late one.
        reason: String,
    },
    /// Requests or instances failed (the figures were printed).
    #[error("bench scale: {requests} RunInstances requests and {instances} instances failed")]
    Failures {
        /// Failed requests.
        requests: usize,
        /// Instances in error.
        instances: usize,
    },
    /// Ctrl-C or SIGTERM.
    #[error("bench scale: interrupted")]
    Interrupted,
}

/// How long the services have to come up and every host to report.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the benchmark and prints its figures; `config` gives the broker
/// (`[rpc]`) and the scheduler's settings. Children are killed and the
/// scratch folder removed however it ends, Ctrl-C included.
pub async fn run(config: &Config, options: Options) -> Result<(), ScaleError> {
    if options.workers == 0 || options.instances == 0 {
        return Err(ScaleError::Setup {
            what: "sizes".into(),
            source: "--workers and --instances must be at least 1".into(),
        });
    }
    // Dropping the run's future (on a signal) drops its guards.
    tokio::select! {
        result = run_scale(config, &options) => result,
        () = interrupted() => Err(ScaleError::Interrupted),
    }
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        // Without handlers the default actions apply; never resolve.
        _ => std::future::pending().await,
    }
}

async fn run_scale(config: &Config, options: &Options) -> Result<(), ScaleError> {
    let dir = tempfile::Builder::new()
        .prefix("stratus-scale-")
        .tempdir()
        .map_err(|e| ScaleError::Setup {
            what: "scratch folder".into(),
            source: e.into(),
        })?;
    let plan = setup::Plan::new(config, dir.path(), options)?;
    plan.create_dirs()?;
    let seeded = setup::seed(&plan).await?;
    // Declared after `dir`, so dropped before it: children die before the
    // folder they write in goes.
    let mut children = Children::default();
    let result = launch_and_load(&plan, &seeded, options, &mut children).await;
    if result.is_err() {
        eprint!("{}", children.log_tails(10));
    }
    result
}

/// Starts every child and waits until the cloud is ready, then loads it.
async fn launch_and_load(
    plan: &setup::Plan,
    seeded: &setup::Seeded,
    options: &Options,
    children: &mut Children,
) -> Result<(), ScaleError> {
    let logs = plan.logs();
    for service in ["network", "scheduler", "api"] {
        children.start(service, &plan.write(service, None)?, &[service], &logs)?;
    }
    let measured = workers::host_name(0);
    children.start(
        "compute",
        &plan.write("compute", Some(&measured))?,
        &["compute"],
        &logs,
    )?;
    let hosting = plan.write("workers", None)?;
    let mut hosts = Vec::new();
    let per = options.workers_per_process.max(1);
    let mut first = 1;
    while first < options.workers {
        let count = per.min(options.workers - first);
        let name = format!("workers-{}", hosts.len() + 1);
        let (first_text, count_text) = (first.to_string(), count.to_string());
        let args = [
            "bench",
            "scale-workers",
            "--first",
            &first_text,
            "--count",
            &count_text,
        ];
        children.start(&name, &hosting, &args, &logs)?;
        hosts.push(name);
        first += count;
    }

    let transport = stratus_rpc::transport::connect(&plan.base.rpc, "stratus-bench-scale")
        .await
        .map_err(|e| ScaleError::Setup {
            what: "connecting to the broker".into(),
            source: e.into(),
        })?;
    let rpc = RpcClient::new(transport.clone(), Duration::from_secs(10));
    let ready = wait_until_ready(&rpc, options.workers, children).await;
    let outcome = match ready {
        Ok(ready_in) => load_and_report(plan, seeded, options, children, &hosts, ready_in).await,
        Err(e) => Err(e),
    };
    transport.close().await;
    outcome
}

/// Waits until the api, scheduler and network answer and the scheduler
/// sees `workers` hosts up; how long that took.
async fn wait_until_ready(
    rpc: &RpcClient,
    workers: usize,
    children: &mut Children,
) -> Result<Duration, ScaleError> {
    let started = Instant::now();
    let ctx = RequestContext::system();
    let scheduler = SchedulerClient::new(rpc.clone());
    let mut missing = "services".to_owned();
    while started.elapsed() < READY_TIMEOUT {
        children.check()?;
        let mut down = Vec::new();
        for topic in ["conductor", "scheduler", "network"] {
            if rpc.ping(&ctx, topic, Duration::from_secs(2)).await.is_err() {
                down.push(topic);
            }
        }
        if down.is_empty() {
            let up = match scheduler.list_hosts(&ctx).await {
                Ok(hosts) => hosts.iter().filter(|h| h.up).count(),
                Err(_) => 0,
            };
            if up >= workers {
                return Ok(started.elapsed());
            }
            missing = format!("{up} of {workers} compute hosts up");
        } else {
            missing = format!("no answer from {}", down.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(ScaleError::NotReady {
        what: missing,
        waited: READY_TIMEOUT,
    })
}

async fn load_and_report(
    plan: &setup::Plan,
    seeded: &setup::Seeded,
    options: &Options,
    children: &mut Children,
    hosts: &[String],
    ready_in: Duration,
) -> Result<(), ScaleError> {
    let client = Client::new(
        &plan.endpoint,
        &plan.base.api.region,
        &seeded.key,
        &seeded.secret,
    );
    client
        .action("DescribeInstances", &[])
        .await
        .map_err(|e| ScaleError::Api {
            action: "DescribeInstances",
            source: e.into(),
        })?;
    report::header(options, hosts.len(), ready_in, &plan.dir);
    let broker = children::listener_pid(children::amqp_port(&plan.base.rpc.url));
    let before = Readings::take(children, hosts, broker);
    let outcome = load::run(
        &client,
        &load::Load {
            image_id: seeded.image_id.clone(),
            instance_type: setup::INSTANCE_TYPE.to_owned(),
            instances: options.instances,
            per_request: options.per_request,
            concurrency: options.concurrency,
            poll_interval: options.poll_interval,
            timeout: options.timeout,
        },
    )
    .await?;
    children.check()?;
    let after = Readings::take(children, hosts, broker);
    report::figures(options, &outcome, &before, &after);
    if outcome.failed_requests.is_empty() && outcome.errors.is_empty() {
        Ok(())
    } else {
        Err(ScaleError::Failures {
            requests: outcome.failed_requests.len(),
            instances: outcome.errors.len(),
        })
    }
}
