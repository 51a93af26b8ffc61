//! One live broker connection: its channels, its reply queue and the queues
//! it has declared. A session that fails is marked dead and replaced whole.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, Event, ExchangeKind};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::topology::{consume, declare_private_queue, declare_work_queue, queue_name};
use super::{Inner, consumer};

/// A connection and what was set up on it.
pub(crate) struct Session {
    /// Distinguishes sessions, so a lost one fails only its own callers.
    pub id: u64,
    pub connection: Connection,
    /// Casts and fanouts, in confirm mode.
    pub publish: Channel,
    /// Call requests and replies, without confirms: the reply is a call's
    /// confirmation, and a lost request or reply ends in the caller's timeout
    /// (or `ConnectionLost`), as it would if the callee died. Skipping the
    /// confirm keeps a call's round trip near the broker's bare one.
    pub unconfirmed: Channel,
    /// This connection's exclusive reply queue.
    pub reply_queue: String,
    /// `x-expires` of work queues, if any.
    pub queue_expiry_ms: Option<u64>,
    /// Queues this session declared before publishing to them.
    declared: Mutex<HashSet<String>>,
    /// Cancelled when anything on this connection fails.
    pub dead: CancellationToken,
    /// Set when we close the connection ourselves, so its end is not a failure.
    closing: AtomicBool,
}

impl Session {
    /// Marks the session failed; the supervisor replaces it.
    pub fn mark_dead(&self, why: &dyn std::fmt::Display) {
        if !self.dead.is_cancelled() && !self.closing.load(Ordering::SeqCst) {
            warn!(session = self.id, error = %why, "AMQP connection failed");
        }
        self.dead.cancel();
    }

    /// Closes the connection on purpose.
    pub async fn close(&self, why: &str) {
        self.closing.store(true, Ordering::SeqCst);
        self.dead.cancel();
        // A broker that no longer answers must not hold up a shutdown.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.connection.close(200, why.into()),
        )
        .await;
    }

    /// Declares and binds the durable queue for `routing_key` once per
    /// session, so a message sent before its server starts waits for it.
    pub async fn ensure_queue(&self, exchange: &str, routing_key: &str) -> lapin::Result<()> {
        let name = queue_name(exchange, routing_key);
        if self
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&name)
        {
            return Ok(());
        }
        declare_work_queue(&self.publish, exchange, routing_key, self.queue_expiry_ms).await?;
        self.declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name);
        Ok(())
    }
}

/// How long connecting and setting up a session may take.
pub(crate) const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The error of a session setup that took longer than [`OPEN_TIMEOUT`].
pub(crate) fn open_timed_out() -> lapin::Error {
    lapin::Error::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connecting to the broker timed out",
    ))
}

/// Connects, sets up the channels and reply queue, starts every registered
/// server and makes the session current (counting it when it replaces a lost
/// one, before anyone can use it).
pub(crate) async fn open(inner: &Arc<Inner>, reconnect: bool) -> lapin::Result<Arc<Session>> {
    let servers = inner.servers.lock().await;
    let properties =
        ConnectionProperties::default().with_connection_name(inner.connection_name.clone().into());
    let connection = Connection::connect(&inner.config.url, properties).await?;
    let publish = publish_channel(inner, &connection).await?;
    let unconfirmed = connection.create_channel().await?;
    let reply_queue = declare_private_queue(&unconfirmed).await?;
    let replies = consume(&unconfirmed, &reply_queue, "", true).await?;
    let session = Arc::new(Session {
        id: inner.next_session.fetch_add(1, Ordering::Relaxed),
        connection,
        publish,
        unconfirmed,
        reply_queue,
        queue_expiry_ms: inner.config.queue_expiry_ms,
        declared: Mutex::new(HashSet::new()),
        dead: CancellationToken::new(),
        closing: AtomicBool::new(false),
    });
    tokio::spawn(route_replies(inner.clone(), session.clone(), replies));
    tokio::spawn(watch_connection(session.clone()));

    for reg in servers.iter().filter(|r| !r.cancel.is_cancelled()) {
        if let Err(e) = consumer::start(inner, &session, reg).await {
            session.mark_dead(&e);
            session.close("setup failed").await;
            return Err(e);
        }
    }
    if reconnect {
        inner.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    inner.session.send_replace(Some(session.clone()));
    Ok(session)
}

/// The channel of casts and fanouts, in confirm mode, with the topic
/// exchange declared.
async fn publish_channel(inner: &Inner, connection: &Connection) -> lapin::Result<Channel> {
    let publish = connection.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let options = ExchangeDeclareOptions {
        durable: true,
        auto_delete: inner.config.queue_expiry_ms.is_some(),
        ..Default::default()
    };
    publish
        .exchange_declare(
            inner.config.exchange.as_str().into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await?;
    Ok(publish)
}

/// Hands each reply on the session's reply queue to its waiting caller.
async fn route_replies(inner: Arc<Inner>, session: Arc<Session>, mut replies: Consumer) {
    loop {
        let delivery = tokio::select! {
            _ = session.dead.cancelled() => break,
            d = replies.next() => d,
        };
        match delivery {
            Some(Ok(delivery)) => {
                let Some(correlation) = delivery.properties.correlation_id().clone() else {
                    warn!("dropping a reply without correlation_id");
                    continue;
                };
                let waiter = inner
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(correlation.as_str());
                match waiter {
                    Some(pending) => {
                        let _ = pending.reply.send(delivery.data);
                    }
                    None => debug!(correlation_id = %correlation, "dropping a late reply"),
                }
            }
            Some(Err(e)) => {
                session.mark_dead(&e);
                break;
            }
            None => {
                session.mark_dead(&"reply consumer ended");
                break;
            }
        }
    }
}

/// Marks the session dead on connection-level errors (broker closed it,
/// socket lost, missed heartbeats).
async fn watch_connection(session: Arc<Session>) {
    let mut events = session.connection.events_listener();
    loop {
        let event = tokio::select! {
            _ = session.dead.cancelled() => break,
            e = events.next() => e,
        };
        match event {
            Some(Event::Error(e)) => {
                session.mark_dead(&e);
                break;
            }
            Some(Event::ConnectionBlocked(reason)) => {
                warn!(%reason, "broker blocked publishing on this connection");
            }
            Some(_) => {}
            None => break,
        }
    }
}
