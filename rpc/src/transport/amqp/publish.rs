//! Sending: casts and fanouts wait for a publisher confirm; a call's reply is
//! its confirmation. A cast that fails because the connection went away waits
//! for the next connection and is sent again (at-least-once); a call whose
//! connection is lost after sending ends with `ConnectionLost`.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, ExchangeKind, PublisherConfirm};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::session::Session;
use super::{Inner, Pending, fanout_exchange};
use crate::error::RpcError;
use crate::target::Target;

/// AMQP delivery mode of messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Waits for a live session until `deadline`.
async fn live_session(
    inner: &Inner,
    deadline: Instant,
    target: &str,
    method: &str,
) -> Result<Arc<Session>, RpcError> {
    let mut watch = inner.session.subscribe();
    let started = Instant::now();
    loop {
        if inner.shutdown.is_cancelled() {
            return Err(RpcError::Closed);
        }
        if let Some(session) = watch.borrow_and_update().clone()
            && !session.dead.is_cancelled()
        {
            return Ok(session);
        }
        // Wake on a new session, or poll again soon if the current one is
        // dead and not yet replaced.
        let wake = Instant::now() + Duration::from_millis(50);
        let until = wake.min(deadline);
        if Instant::now() >= deadline {
            return Err(RpcError::Disconnected {
                target: target.to_owned(),
                method: method.to_owned(),
                waited: started.elapsed(),
            });
        }
        let _ = tokio::time::timeout_at(until, watch.changed()).await;
    }
}

/// Publishes and returns the confirm future, marking the session dead when
/// the channel fails.
async fn publish(
    session: &Session,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Option<PublisherConfirm> {
    match session
        .publish
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload,
            properties,
        )
        .await
    {
        Ok(confirm) => Some(confirm),
        Err(e) => {
            session.mark_dead(&e);
            None
        }
    }
}

/// What a confirm said, or `None` when the connection failed before it came.
fn confirmed(
    session: &Session,
    result: lapin::Result<Confirmation>,
    target: &str,
    method: &str,
) -> Option<Result<(), RpcError>> {
    match result {
        Ok(c) if c.is_nack() => Some(Err(RpcError::Nacked {
            target: target.to_owned(),
            method: method.to_owned(),
        })),
        Ok(_) => Some(Ok(())),
        Err(e) => {
            session.mark_dead(&e);
            None
        }
    }
}

pub(crate) async fn cast(
    inner: &Inner,
    target: &Target,
    method: &str,
    payload: Vec<u8>,
) -> Result<(), RpcError> {
    let key = target.routing_key();
    let deadline = Instant::now() + Duration::from_millis(inner.config.publish_timeout_ms);
    let exchange = inner.config.exchange.as_str();
    loop {
        let session = live_session(inner, deadline, &key, method).await?;
        if let Err(e) = session.ensure_queue(exchange, &key).await {
            session.mark_dead(&e);
            continue;
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let Some(confirm) = publish(&session, exchange, &key, &payload, properties).await else {
            continue;
        };
        if let Some(outcome) = confirmed(&session, confirm.await, &key, method) {
            return outcome;
        }
    }
}

pub(crate) async fn fanout(
    inner: &Inner,
    topic: &str,
    method: &str,
    payload: Vec<u8>,
) -> Result<(), RpcError> {
    let exchange = fanout_exchange(&inner.config.exchange, topic);
    let deadline = Instant::now() + Duration::from_millis(inner.config.publish_timeout_ms);
    loop {
        let session = live_session(inner, deadline, &exchange, method).await?;
        let declared = session
            .publish
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    // Fanout exchanges live while servers are bound to them.
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if let Err(e) = declared {
            session.mark_dead(&e);
            continue;
        }
        let properties = BasicProperties::default().with_content_type("application/json".into());
        let Some(confirm) = publish(&session, &exchange, "", &payload, properties).await else {
            continue;
        };
        if let Some(outcome) = confirmed(&session, confirm.await, &exchange, method) {
            return outcome;
        }
    }
}

pub(crate) async fn call(
    inner: &Inner,
    target: &Target,
    method: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, RpcError> {
    let key = target.routing_key();
    let deadline = Instant::now() + timeout;
    let exchange = inner.config.exchange.as_str();
    let timed_out = || RpcError::Timeout {
        target: key.clone(),
        method: method.to_owned(),
        timeout,
    };
    loop {
        let session = match live_session(inner, deadline, &key, method).await {
            Err(RpcError::Disconnected { .. }) => return Err(timed_out()),
            other => other?,
        };
        if let Err(e) = session.ensure_queue(exchange, &key).await {
            session.mark_dead(&e);
            continue;
        }
        let correlation = uuid::Uuid::new_v4().simple().to_string();
        let (reply_tx, reply_rx) = oneshot::channel();
        inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                correlation.clone(),
                Pending {
                    session: session.id,
                    reply: reply_tx,
                },
            );
        let forget = || {
            inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&correlation);
        };
        // The broker drops the request once the caller has stopped waiting,
        // so a server that comes back later does not run stale calls.
        let ttl_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        let properties = BasicProperties::default()
            .with_reply_to(session.reply_queue.as_str().into())
            .with_correlation_id(correlation.as_str().into())
            .with_expiration(ttl_ms.to_string().into())
            .with_content_type("application/json".into());
        let sent = session
            .unconfirmed
            .basic_publish(
                exchange.into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            )
            .await;
        if let Err(e) = sent {
            // Not sent: try again on the next connection, within the deadline.
            session.mark_dead(&e);
            forget();
            continue;
        }
        tokio::select! {
            reply = reply_rx => {
                return reply.map_err(|_| RpcError::ConnectionLost {
                    // The session died and failed its callers.
                    target: key.clone(),
                    method: method.to_owned(),
                });
            }
            _ = tokio::time::sleep_until(deadline) => {
                forget();
                return Err(timed_out());
            }
        }
    }
}
