//! AMQP 0-9-1 on RabbitMQ through lapin.
//!
//! Topology, per exchange name `X` (config, default `stratus`):
//! - `X`, a durable topic exchange; queue `X.<topic>` bound with key `<topic>`
//!   and `X.<topic>.<host>` with `<topic>.<host>`, both durable;
//! - `X.<topic>.fanout`, a fanout exchange; each server binds its own
//!   exclusive queue to it;
//! - replies go through the default exchange to an exclusive reply queue per
//!   connection, matched to callers by `correlation_id`.
//!
//! One connection per transport. When it drops, a supervisor reconnects with
//! backoff and re-declares every consumer; senders wait for the new
//! connection (up to `publish_timeout`) and resend what was not confirmed.

mod consumer;
mod publish;
mod session;
mod supervisor;
pub(crate) mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RpcConfig;
use crate::error::RpcError;
use crate::handler::Handler;
use crate::transport::{Outgoing, ServerHandle, Transport};
use crate::wire::ids::HostName;

use consumer::ServerReg;
use session::Session;

/// A caller waiting for its reply: the session its reply queue lives on, and
/// where to hand the reply.
struct Pending {
    session: u64,
    reply: oneshot::Sender<Vec<u8>>,
}

struct Inner {
    config: RpcConfig,
    connection_name: String,
    /// The live session, or none while reconnecting.
    session: watch::Sender<Option<Arc<Session>>>,
    /// Registered servers. Held while a session is being opened so a server
    /// registered meanwhile is started exactly once.
    servers: tokio::sync::Mutex<Vec<Arc<ServerReg>>>,
    pending: Mutex<HashMap<String, Pending>>,
    shutdown: CancellationToken,
    next_session: AtomicU64,
    reconnects: AtomicU64,
}

/// The AMQP transport. Share it behind an `Arc`; dropping the last handle
/// closes the connection.
pub struct AmqpTransport {
    inner: Arc<Inner>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &redact(&self.inner.config.url))
            .field("connection_name", &self.inner.connection_name)
            .finish_non_exhaustive()
    }
}

impl AmqpTransport {
    /// Connects to the broker in `config.url`. The first connection must
    /// succeed; later losses are recovered in the background. The connection
    /// is named `connection_name` in the broker's listings.
    pub async fn connect(config: &RpcConfig, connection_name: &str) -> Result<Self, RpcError> {
        let (session_tx, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            config: config.clone(),
            connection_name: connection_name.to_owned(),
            session: session_tx,
            servers: tokio::sync::Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            next_session: AtomicU64::new(1),
            reconnects: AtomicU64::new(0),
        });
        let first = tokio::time::timeout(session::OPEN_TIMEOUT, session::open(&inner, false))
            .await
            .unwrap_or_else(|_| Err(session::open_timed_out()))
            .map_err(|source| RpcError::Connect {
                url: redact(&config.url),
                source,
            })?;
        let supervisor = tokio::spawn(supervisor::run(inner.clone(), first));
        Ok(Self {
            inner,
            supervisor: Mutex::new(Some(supervisor)),
        })
    }

    /// How many times the connection was re-established.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }
}

impl Drop for AmqpTransport {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl Transport for AmqpTransport {
    async fn cast(&self, message: Outgoing<'_>) -> Result<(), RpcError> {
        publish::cast(&self.inner, message).await
    }

    async fn call(&self, message: Outgoing<'_>, timeout: Duration) -> Result<Vec<u8>, RpcError> {
        publish::call(&self.inner, message, timeout).await
    }

    async fn fanout_cast(&self, message: Outgoing<'_>) -> Result<(), RpcError> {
        publish::fanout(&self.inner, message).await
    }

    async fn serve(
        &self,
        topic: &str,
        host: Option<&HostName>,
        handler: Arc<dyn Handler>,
    ) -> Result<ServerHandle, RpcError> {
        let reg = Arc::new(ServerReg {
            topic: topic.to_owned(),
            host: host.cloned(),
            handler,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let mut servers = self.inner.servers.lock().await;
        servers.retain(|r| !r.cancel.is_cancelled());
        let live = self.inner.session.borrow().clone();
        if let Some(session) = live.filter(|s| !s.dead.is_cancelled()) {
            // Failing here is a setup error the caller should see; a session
            // that dies later re-declares the server on the next one.
            let started = tokio::time::timeout(
                session::OPEN_TIMEOUT,
                consumer::start(&self.inner, &session, &reg),
            )
            .await
            .unwrap_or_else(|_| Err(session::open_timed_out()));
            started.map_err(|e| RpcError::amqp(format!("starting the {topic} server"), e))?;
        }
        servers.push(reg.clone());
        Ok(ServerHandle::new(reg.cancel.clone(), reg.tracker.clone()))
    }

    async fn close(&self) {
        self.inner.shutdown.cancel();
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut task) = supervisor {
            // The supervisor closes the connection, itself bounded; do not
            // wait forever on a stuck one.
            if tokio::time::timeout(std::time::Duration::from_secs(10), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("amqp://guest:secret@broker:5672/%2f"),
            "amqp://guest:***@broker:5672/%2f"
        );
        assert_eq!(redact("amqp://broker:5672"), "amqp://broker:5672");
    }
}
