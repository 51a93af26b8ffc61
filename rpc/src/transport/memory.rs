//! The in-process bus for the embedded mode: the same topics, host queues,
//! fanout, call timeouts, redelivery and bounded concurrency as AMQP, with
//! channels instead of a broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_trait::async_trait;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::RpcError;
use crate::handler::Handler;
use crate::server::{Disposition, process};
use crate::target::Target;
use crate::transport::{Outgoing, ServerHandle, Transport};
use crate::wire::ids::HostName;

#[derive(Debug)]
struct Message {
    data: Vec<u8>,
    reply: Option<oneshot::Sender<Vec<u8>>>,
    /// Like a per-message TTL on the broker: a call nobody took in time is dropped.
    expires: Option<Instant>,
}

/// Both ends of a queue: senders publish, every server of it receives.
type Queue = (Sender<Message>, Receiver<Message>);
/// A fanout subscriber: its id (to unsubscribe) and its private queue.
type Subscriber = (u64, Sender<Message>);

#[derive(Debug, Default)]
struct Bus {
    /// Work queues by routing key; created on first use by either side, as a
    /// durable queue would be, so a cast before its server starts waits for it.
    queues: Mutex<HashMap<String, Queue>>,
    /// Fanout subscribers by topic.
    fanouts: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_subscriber: AtomicU64,
}

impl Bus {
    fn queue(&self, key: &str) -> Queue {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .entry(key.to_owned())
            .or_insert_with(async_channel::unbounded)
            .clone()
    }
}

/// An in-process transport. Clones share one bus, as connections share a broker.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    bus: Arc<Bus>,
    prefetch: usize,
    retry_delay: Duration,
}

impl MemoryTransport {
    /// A new bus; `prefetch` bounds concurrent handlers per queue, and a
    /// retryable failure is redelivered after `retry_delay`.
    pub fn new(prefetch: u16, retry_delay: Duration) -> Self {
        Self {
            bus: Arc::new(Bus::default()),
            prefetch: usize::from(prefetch.max(1)),
            retry_delay,
        }
    }

    fn spawn_consumer(
        &self,
        name: String,
        tx: Sender<Message>,
        rx: Receiver<Message>,
        handler: Arc<dyn Handler>,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let permits = Arc::new(Semaphore::new(self.prefetch));
        let retry_delay = self.retry_delay;
        let handlers = tracker.clone();
        tracker.spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = cancel.cancelled() => break,
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                };
                let mut msg = tokio::select! {
                    _ = cancel.cancelled() => break,
                    m = rx.recv() => match m { Ok(m) => m, Err(_) => break },
                };
                if msg.expires.is_some_and(|t| t <= Instant::now()) {
                    tracing::debug!(queue = %name, "dropping expired call");
                    continue;
                }
                let handler = handler.clone();
                let (name, tx) = (name.clone(), tx.clone());
                handlers.spawn(async move {
                    let is_call = msg.reply.is_some();
                    let processed = process(handler.as_ref(), &name, &msg.data, is_call).await;
                    drop(permit);
                    match processed.disposition {
                        Disposition::Ack => {
                            if let (Some(reply), Some(to)) = (processed.reply, msg.reply.take()) {
                                // The caller may have timed out and gone: the reply is dropped.
                                let _ = to.send(reply);
                            }
                        }
                        Disposition::Requeue => {
                            tokio::time::sleep(retry_delay).await;
                            let _ = tx.send(msg).await;
                        }
                    }
                });
            }
        });
    }
}

impl MemoryTransport {
    /// Puts a message on the work queue of `target`.
    async fn enqueue(&self, target: &Target, message: Message) -> Result<(), RpcError> {
        let (tx, _) = self.bus.queue(&target.routing_key());
        tx.send(message).await.map_err(|_| RpcError::Closed)
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn cast(&self, message: Outgoing<'_>) -> Result<(), RpcError> {
        let queued = Message {
            data: message.payload,
            reply: None,
            expires: None,
        };
        self.enqueue(message.target, queued).await
    }

    async fn call(&self, message: Outgoing<'_>, timeout: Duration) -> Result<Vec<u8>, RpcError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let queued = Message {
            data: message.payload,
            reply: Some(reply_tx),
            expires: Some(deadline),
        };
        self.enqueue(message.target, queued).await?;
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(reply)) => Ok(reply),
            // Dropped unanswered (expired or the bus closed), or no reply in time.
            Ok(Err(_)) | Err(_) => Err(RpcError::Timeout {
                target: message.target.clone(),
                method: message.method.to_owned(),
                timeout,
            }),
        }
    }

    async fn fanout_cast(&self, message: Outgoing<'_>) -> Result<(), RpcError> {
        let subscribers: Vec<Sender<Message>> = {
            let fanouts = self
                .bus
                .fanouts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            fanouts
                .get(&message.target.topic)
                .map(|subs| subs.iter().map(|(_, tx)| tx.clone()).collect())
                .unwrap_or_default()
        };
        for tx in subscribers {
            let _ = tx
                .send(Message {
                    data: message.payload.clone(),
                    reply: None,
                    expires: None,
                })
                .await;
        }
        Ok(())
    }

    async fn serve(
        &self,
        topic: &str,
        host: Option<&HostName>,
        handler: Arc<dyn Handler>,
    ) -> Result<ServerHandle, RpcError> {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut targets = vec![Target::topic(topic)];
        if let Some(host) = host {
            targets.push(Target::host(topic, host.clone()));
        }
        for target in targets {
            let key = target.routing_key();
            let (tx, rx) = self.bus.queue(&key);
            self.spawn_consumer(key, tx, rx, handler.clone(), cancel.clone(), &tracker);
        }

        let (tx, rx) = async_channel::unbounded();
        let id = self.bus.next_subscriber.fetch_add(1, Ordering::Relaxed);
        self.bus
            .fanouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(topic.to_owned())
            .or_default()
            .push((id, tx.clone()));
        let name = format!("{topic}.fanout");
        self.spawn_consumer(name, tx, rx, handler, cancel.clone(), &tracker);

        // Unsubscribe from the fanout when the server stops, as an exclusive
        // queue vanishes with its consumer.
        let bus = self.bus.clone();
        let topic = topic.to_owned();
        let unsubscribe = cancel.clone();
        tracker.spawn(async move {
            unsubscribe.cancelled().await;
            let mut fanouts = bus.fanouts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(subs) = fanouts.get_mut(&topic) {
                subs.retain(|(sub, _)| *sub != id);
            }
        });
        Ok(ServerHandle::new(cancel, tracker))
    }

    async fn close(&self) {}
}
