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

/// Runs a broker operation, giving up at `deadline`: a broker that stops
/// answering must not hang a sender. A timeout marks the session dead, so
/// the caller's loop reconnects or reports `Disconnected`.
async fn bounded<T>(
    session: &Session,
    deadline: Instant,
    operation: impl std::future::Future<Output = lapin::Result<T>>,
) -> Option<T> {
    match tokio::time::timeout_at(deadline, operation).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            session.mark_dead(&e);
            None
        }
        Err(_) => {
            session.mark_dead(&"the broker did not answer in time");
            None
        }
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
        if bounded(&session, deadline, session.ensure_queue(exchange, &key))
            .await
            .is_none()
        {
            continue;
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let Some(confirm) = publish(&session, exchange, &key, &payload, properties).await else {
            continue;
        };
        let Ok(result) = tokio::time::timeout_at(deadline, confirm).await else {
            session.mark_dead(&"no publisher confirm in time");
            continue;
        };
        if let Some(outcome) = confirmed(&session, result, &key, method) {
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
        let declare = session.publish.exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                // Fanout exchanges live while servers are bound to them.
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        );
        if bounded(&session, deadline, declare).await.is_none() {
            continue;
        }
        let properties = BasicProperties::default().with_content_type("application/json".into());
        let Some(confirm) = publish(&session, &exchange, "", &payload, properties).await else {
            continue;
        };
        let Ok(result) = tokio::time::timeout_at(deadline, confirm).await else {
            session.mark_dead(&"no publisher confirm in time");
            continue;
        };
        if let Some(outcome) = confirmed(&session, result, &exchange, method) {
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
        if bounded(&session, deadline, session.ensure_queue(exchange, &key))
            .await
            .is_none()
        {
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
        let send = session.unconfirmed.basic_publish(
            exchange.into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            &payload,
            properties,
        );
        if bounded(&session, deadline, send).await.is_none() {
            // Not sent: try again on the next connection, within the deadline.
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
