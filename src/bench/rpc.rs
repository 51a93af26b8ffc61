//! `stratus bench rpc`: stratus calls and casts against the bare lapin round
//! trip, on the same broker, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::value::RawValue;

use stratus_rpc::clients::RpcClient;
use stratus_rpc::config::RpcConfig;
use stratus_rpc::context::RequestContext;
use stratus_rpc::error::{HandlerError, RpcError};
use stratus_rpc::handler::Handler;
use stratus_rpc::target::Target;
use stratus_rpc::transport::amqp::AmqpTransport;
use stratus_rpc::transport::{ServerHandle, Transport};

use super::BenchError;
use super::stats::Figures;

/// Sizes of `stratus bench rpc`.
#[derive(Debug, Clone, Copy, Args)]
pub struct Options {
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

super::error::bench_steps!("rpc");

/// Measurements alternate between raw and stratus in this many rounds, so
/// drift in the machine's load falls on both alike.
const ROUNDS: usize = 5;

/// Both sides of the run on one broker: the bare lapin pair and a stratus
/// server and client on an exchange of their own.
struct Rig {
    raw: raw::Pair,
    server: AmqpTransport,
    serving: ServerHandle,
    client: Arc<dyn Transport>,
    rpc: RpcClient,
}

impl Rig {
    async fn start(config: &RpcConfig) -> Result<Self, BenchError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let raw = raw::Pair::start(&config.url, &id)
            .await
            .map_err(fail("bare lapin"))?;
        let mut bench_config = config.clone();
        bench_config.exchange = format!("stratus-bench-{id}");
        bench_config.queue_expiry_ms = Some(60_000);
        let server = AmqpTransport::connect(&bench_config, "stratus-bench-server")
            .await
            .map_err(fail("server"))?;
        let serving = server
            .serve("bench", None, Arc::new(Echo))
            .await
            .map_err(fail("serve"))?;
        let client: Arc<dyn Transport> = Arc::new(
            AmqpTransport::connect(&bench_config, "stratus-bench-client")
                .await
                .map_err(fail("client"))?,
        );
        let rpc = RpcClient::new(client.clone(), Duration::from_secs(30));
        Ok(Self {
            raw,
            server,
            serving,
            client,
            rpc,
        })
    }

    async fn raw_round_trips(&self, workers: usize, total: usize) -> Result<Samples, BenchError> {
        self.raw
            .round_trips(workers, total)
            .await
            .map_err(fail("bare lapin"))
    }

    async fn calls(&self, workers: usize, total: usize) -> Result<Samples, BenchError> {
        send(&self.rpc, Message::Call, workers, total)
            .await
            .map_err(fail("call"))
    }

    async fn close(self) {
        self.serving.stop().await;
        self.client.close().await;
        self.server.close().await;
        self.raw.close().await;
    }
}

/// Runs every measurement and prints one line each, ending with
/// `call p50 ratio to raw: <x.xx>`.
pub async fn run(config: &RpcConfig, options: Options) -> Result<(), BenchError> {
    println!(
        "broker: {}",
        stratus_rpc::transport::amqp::redact(&config.url)
    );
    println!(
        "{} serial round trips, {} concurrent callers, {} casts, {ROUNDS} alternating rounds",
        options.calls, options.concurrency, options.casts
    );
    let rig = Rig::start(config).await?;
    // Warm both paths (connections, declarations, allocator) before timing.
    rig.raw_round_trips(1, 200).await?;
    rig.calls(1, 200).await?;
    let (raw_serial, serial) = round_trips(&rig, options).await?;
    cast_rates(&rig.rpc, options).await?;
    rig.close().await;

    // Oslo.messaging on this class of machine: 491 serial calls/s.
    println!(
        "stratus serial call rate vs oslo.messaging's 491/s: {:.1}x",
        serial.rate / 491.0
    );
    println!(
        "call p50 ratio to raw: {:.2}",
        serial.p50.as_secs_f64() / raw_serial.p50.as_secs_f64()
    );
    Ok(())
}

/// Serial and concurrent round trips, raw and stratus in alternation;
/// prints them and returns the serial figures (raw, stratus).
async fn round_trips(rig: &Rig, options: Options) -> Result<(Figures, Figures), BenchError> {
    let per_round = options.calls.div_ceil(ROUNDS);
    let callers = options.concurrency;
    let (mut raw_serial, mut serial) = (Samples::default(), Samples::default());
    let (mut raw_concurrent, mut concurrent) = (Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        raw_serial.add(rig.raw_round_trips(1, per_round).await?);
        serial.add(rig.calls(1, per_round).await?);
        raw_concurrent.add(rig.raw_round_trips(callers, per_round).await?);
        concurrent.add(rig.calls(callers, per_round).await?);
    }
    let (raw_serial, serial) = (raw_serial.figures(), serial.figures());
    println!("{}", raw_serial.line("raw lapin round trip, serial"));
    println!("{}", serial.line("stratus call, serial"));
    let raw_concurrent = raw_concurrent.figures();
    println!(
        "{}",
        raw_concurrent.line(&format!("raw lapin round trip, {callers} callers"))
    );
    let concurrent = concurrent.figures();
    println!(
        "{}",
        concurrent.line(&format!("stratus call, {callers} callers"))
    );
    Ok((raw_serial, serial))
}

/// Confirmed casts, serial then from concurrent senders; prints both.
async fn cast_rates(rpc: &RpcClient, options: Options) -> Result<(), BenchError> {
    let callers = options.concurrency;
    let serial = send(rpc, Message::Cast, 1, options.casts.min(options.calls))
        .await
        .map_err(fail("cast"))?;
    println!(
        "{}",
        serial.figures().line("stratus cast (confirmed), serial")
    );
    let concurrent = send(rpc, Message::Cast, callers, options.casts)
        .await
        .map_err(fail("cast"))?;
    println!(
        "{}",
        concurrent
            .figures()
            .line(&format!("stratus cast (confirmed), {callers} senders"))
    );
    Ok(())
}

/// Latency samples and the wall time they took, gathered over rounds.
#[derive(Debug, Default)]
struct Samples {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Samples {
    fn add(&mut self, more: Samples) {
        self.latencies.extend(more.latencies);
        self.elapsed += more.elapsed;
    }

    fn figures(self) -> Figures {
        Figures::from(self.latencies, self.elapsed)
    }
}

/// Returns its arguments.
struct Echo;

#[async_trait]
impl Handler for Echo {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        _method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        Ok(args.to_owned())
    }
}

/// What the stratus side sends: a call waits for the echo, a cast for the
/// broker's confirm.
#[derive(Debug, Clone, Copy)]
enum Message {
    Call,
    Cast,
}

/// `workers` tasks share `total` sends; returns per-send latencies.
async fn send(
    rpc: &RpcClient,
    kind: Message,
    workers: usize,
    total: usize,
) -> Result<Samples, RpcError> {
    let op = move |rpc: RpcClient| async move {
        let (ctx, target) = (RequestContext::system(), Target::topic("bench"));
        match kind {
            Message::Call => rpc
                .call::<_, u64>(&ctx, &target, "echo", &42u64)
                .await
                .map(drop),
            Message::Cast => rpc.cast(&ctx, &target, "echo", &42u64).await,
        }
    };
    measure(workers, total, op, rpc.clone()).await
}

async fn measure<F, Fut>(
    workers: usize,
    total: usize,
    op: F,
    rpc: RpcClient,
) -> Result<Samples, RpcError>
where
    F: Fn(RpcClient) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), RpcError>> + Send,
{
    let workers = workers.max(1);
    let per_worker = total.div_ceil(workers);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (op, rpc) = (op.clone(), rpc.clone());
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t = Instant::now();
                op(rpc.clone()).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, RpcError>(samples)
        });
    }
    let mut samples = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        samples.extend(joined.map_err(|_| RpcError::Closed)??);
    }
    Ok(Samples {
        latencies: samples,
        elapsed: started.elapsed(),
    })
}

/// The baseline: a bare publish to a queue, a consumer that publishes the
/// reply to `reply_to`, and a reply consumer. No envelope, no confirms, no
/// framework.
mod raw {
    use super::*;

    /// A replying server and a client, each on its own connection.
    pub(super) struct Pair {
        server: Connection,
        client: Connection,
        request_queue: String,
        serve: tokio::task::JoinHandle<()>,
    }

    impl Pair {
        pub(super) async fn start(url: &str, id: &str) -> Result<Self, lapin::Error> {
            let server = Connection::connect(url, ConnectionProperties::default()).await?;
            let request_queue = format!("stratus-bench-raw-{id}");
            let channel = server.create_channel().await?;
            declare(&channel, &request_queue).await?;
            let mut requests = consume(&channel, &request_queue).await?;
            let serve = tokio::spawn(async move {
                while let Some(Ok(delivery)) = requests.next().await {
                    let Some(to) = delivery.properties.reply_to().clone() else {
                        continue;
                    };
                    let properties = BasicProperties::default().with_correlation_id(
                        delivery
                            .properties
                            .correlation_id()
                            .clone()
                            .unwrap_or_default(),
                    );
                    let _ = channel
                        .basic_publish(
                            "".into(),
                            to,
                            BasicPublishOptions::default(),
                            &delivery.data,
                            properties,
                        )
                        .await;
                }
            });
            let client = Connection::connect(url, ConnectionProperties::default()).await?;
            Ok(Self {
                server,
                client,
                request_queue,
                serve,
            })
        }

        /// `workers` callers, each with its own channel and reply queue, share
        /// `total` round trips.
        pub(super) async fn round_trips(
            &self,
            workers: usize,
            total: usize,
        ) -> Result<Samples, lapin::Error> {
            let workers = workers.max(1);
            let per_worker = total.div_ceil(workers);
            let mut ready = Vec::with_capacity(workers);
            for _ in 0..workers {
                ready.push(Caller::open(&self.client).await?);
            }
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for caller in ready {
                let queue = self.request_queue.clone();
                tasks.spawn(async move { caller.run(queue, per_worker).await });
            }
            let mut latencies = Vec::with_capacity(total);
            while let Some(joined) = tasks.join_next().await {
                let done = joined.map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
                latencies.extend(done?);
            }
            Ok(Samples {
                latencies,
                elapsed: started.elapsed(),
            })
        }

        pub(super) async fn close(self) {
            self.serve.abort();
            let _ = self.client.close(200, "done".into()).await;
            let _ = self.server.close(200, "done".into()).await;
        }
    }

    /// Declares an exclusive, auto-deleted queue; its name.
    async fn declare(channel: &Channel, name: &str) -> Result<String, lapin::Error> {
        let queue = channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions::exclusive().auto_delete(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue.name().to_string())
    }

    /// Consumes `queue` without acknowledgements.
    async fn consume(channel: &Channel, queue: &str) -> Result<lapin::Consumer, lapin::Error> {
        let options = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        channel
            .basic_consume(queue.into(), "".into(), options, FieldTable::default())
            .await
    }

    struct Caller {
        channel: Channel,
        reply_queue: String,
        replies: lapin::Consumer,
    }

    impl Caller {
        async fn open(connection: &Connection) -> Result<Self, lapin::Error> {
            let channel = connection.create_channel().await?;
            // An empty name asks the broker to pick one.
            let reply_queue = declare(&channel, "").await?;
            let replies = consume(&channel, &reply_queue).await?;
            Ok(Self {
                channel,
                reply_queue,
                replies,
            })
        }

        async fn run(mut self, queue: String, n: usize) -> Result<Vec<Duration>, lapin::Error> {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                let properties = BasicProperties::default()
                    .with_reply_to(self.reply_queue.as_str().into())
                    .with_correlation_id(i.to_string().into());
                self.channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        b"42",
                        properties,
                    )
                    .await?;
                match self.replies.next().await {
                    Some(Ok(_)) => samples.push(t.elapsed()),
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
            let _ = self.channel.close(200, "done".into()).await;
            Ok(samples)
        }
    }
}
