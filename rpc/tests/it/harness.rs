//! One bus per test: a fresh in-process bus, or a uniquely named exchange
//! (and so uniquely named queues) on the real broker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratus_rpc::transport::amqp::AmqpTransport;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{Handler, RpcClient, RpcConfig, ServerHandle, Transport};
use stratus_test_support::broker;

/// Prefetch used by the suite, so the concurrency test knows the bound.
pub const PREFETCH: u16 = 4;

/// The configuration the suite runs with.
pub fn test_config(exchange: &str) -> RpcConfig {
    RpcConfig {
        prefetch: PREFETCH,
        call_timeout_ms: 5_000,
        publish_timeout_ms: 20_000,
        reconnect_min_ms: 50,
        reconnect_max_ms: 1_000,
        retry_delay_ms: 50,
        // Queues of this test vanish a minute after it ends.
        ..broker::rpc_config(exchange.to_owned(), Duration::from_secs(60))
    }
}

/// What a transport under test offers the suite.
#[allow(async_fn_in_trait)]
pub trait Harness {
    /// A fresh, private bus.
    async fn start() -> Self;
    /// A new connection to this test's bus.
    async fn transport(&self) -> Arc<dyn Transport>;
    /// Closes every connection this test opened.
    async fn finish(self);

    /// Serves `topic` (and `host`'s queue of it) with `handler` on a new connection.
    async fn serve(
        &self,
        topic: &str,
        host: Option<&HostName>,
        handler: Arc<dyn Handler>,
    ) -> ServerHandle {
        self.transport()
            .await
            .serve(topic, host, handler)
            .await
            .expect("serve")
    }

    /// A client on a new connection.
    async fn client(&self) -> RpcClient {
        RpcClient::new(self.transport().await, Duration::from_secs(5))
    }
}

/// The in-process bus.
pub struct MemoryHarness {
    bus: MemoryTransport,
}

impl Harness for MemoryHarness {
    async fn start() -> Self {
        Self {
            bus: MemoryTransport::new(PREFETCH, Duration::from_millis(50)),
        }
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.bus.clone())
    }

    async fn finish(self) {}
}

/// A real RabbitMQ, with this test's own exchange.
pub struct AmqpHarness {
    pub config: RpcConfig,
    pub name: String,
    opened: Mutex<Vec<Arc<AmqpTransport>>>,
}

impl AmqpHarness {
    /// A harness on `config` (its exchange already unique).
    pub fn with_config(config: RpcConfig, name: String) -> Self {
        Self {
            config,
            name,
            opened: Mutex::new(Vec::new()),
        }
    }

    /// A new connection, kept for inspection.
    pub async fn amqp(&self) -> Arc<AmqpTransport> {
        let n = self.opened.lock().expect("lock").len();
        let transport = AmqpTransport::connect(&self.config, &format!("{}-{n}", self.name))
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ is needed for these tests (run deploy/dev-setup): {e}")
            });
        let transport = Arc::new(transport);
        self.opened.lock().expect("lock").push(transport.clone());
        transport
    }
}

impl Harness for AmqpHarness {
    async fn start() -> Self {
        let name = format!("stratus-test-{}", uuid::Uuid::new_v4().simple());
        Self::with_config(test_config(&name), name)
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        self.amqp().await
    }

    async fn finish(self) {
        let opened = std::mem::take(&mut *self.opened.lock().expect("lock"));
        for transport in opened {
            transport.close().await;
        }
    }
}
