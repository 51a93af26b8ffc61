//! The [`Transport`] trait and its two implementations.

pub mod amqp;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::RpcError;
use crate::handler::Handler;
use crate::target::Target;
use crate::wire::ids::HostName;

/// One encoded message on its way.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Where it goes: for a fanout, the topic whose servers all get it.
    pub target: &'a Target,
    /// Its method, for errors and logs.
    pub method: &'a str,
    /// The envelope, already encoded by [`crate::RpcClient`].
    pub payload: Vec<u8>,
}

/// Moves encoded messages between services.
#[async_trait]
pub trait Transport: std::fmt::Debug + Send + Sync + 'static {
    /// One-way message to whoever serves its target; Ok once the bus holds it.
    async fn cast(&self, message: Outgoing<'_>) -> Result<(), RpcError>;

    /// Request and wait for exactly one reply, or time out.
    async fn call(&self, message: Outgoing<'_>, timeout: Duration) -> Result<Vec<u8>, RpcError>;

    /// One-way message to every server of its target's topic.
    async fn fanout_cast(&self, message: Outgoing<'_>) -> Result<(), RpcError>;

    /// Serves `<topic>`, `<topic>.<host>` when a host is given, and the
    /// topic's fanout, until the returned handle is stopped or dropped.
    async fn serve(
        &self,
        topic: &str,
        host: Option<&HostName>,
        handler: Arc<dyn Handler>,
    ) -> Result<ServerHandle, RpcError>;

    /// Stops serving and releases the connection.
    async fn close(&self);
}

/// A running server. Stopping it stops taking messages and waits for the
/// handlers already running; dropping it stops taking messages.
#[derive(Debug)]
pub struct ServerHandle {
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl ServerHandle {
    pub(crate) fn new(cancel: CancellationToken, tracker: TaskTracker) -> Self {
        Self { cancel, tracker }
    }

    /// Stops consuming and waits for in-flight handlers to finish.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Opens the transport the configuration names. A memory transport is a new,
/// private bus: only services given this same handle can reach each other.
pub async fn connect(
    config: &crate::config::RpcConfig,
    connection_name: &str,
) -> Result<Arc<dyn Transport>, RpcError> {
    match config.backend {
        crate::config::Backend::Amqp => Ok(Arc::new(
            amqp::AmqpTransport::connect(config, connection_name).await?,
        )),
        crate::config::Backend::Memory => Ok(Arc::new(memory::MemoryTransport::new(
            config.prefetch,
            Duration::from_millis(config.retry_delay_ms),
        ))),
    }
}
