//! Sending: casts and fanouts wait for a publisher confirm; a call's reply is
//! its confirmation. A cast that fails because the connection went away waits
//! for the next connection and is sent again (at-least-once); a call whose
//! connection is lost after sending ends with `ConnectionLost`.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::session::Session;
use super::topology::{declare_fanout_exchange, fanout_exchange};
use super::{Inner, Pending};
use crate::error::RpcError;
use crate::target::Target;
use crate::transport::Outgoing;

/// AMQP delivery mode of messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Waits for a live session until `deadline`.
async fn live_session(
    inner: &Inner,
    deadline: Instant,
    target: &Target,
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
                target: target.clone(),
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
    target: &Target,
    method: &str,
) -> Option<Result<(), RpcError>> {
    match result {
        Ok(c) if c.is_nack() => Some(Err(RpcError::Nacked {
            target: target.clone(),
            method: method.to_owned(),
        })),
        Ok(_) => Some(Ok(())),
        Err(e) => {
            session.mark_dead(&e);
            None
        }
    }
}

/// Where a confirmed message goes; declared before it is sent (a work queue
/// once per session), so the broker never drops it for want of a queue or
/// exchange.
enum Destination<'a> {
    /// The durable work queue of a routing key on the topic exchange: the
    /// message waits there for a server, across broker restarts.
    Queue { exchange: &'a str, key: &'a str },
    /// A topic's fanout exchange: only servers bound now get the message.
    Fanout { exchange: &'a str },
}

impl Destination<'_> {
    async fn declare(&self, session: &Session) -> lapin::Result<()> {
        match self {
            Self::Queue { exchange, key } => session.ensure_queue(exchange, key).await,
            Self::Fanout { exchange } => declare_fanout_exchange(&session.publish, exchange).await,
        }
    }

    /// The exchange and routing key to publish with.
    fn address(&self) -> (&str, &str) {
        match self {
            Self::Queue { exchange, key } => (exchange, key),
            Self::Fanout { exchange } => (exchange, ""),
        }
    }

    fn properties(&self) -> BasicProperties {
        let properties = BasicProperties::default().with_content_type("application/json".into());
        match self {
            Self::Queue { .. } => properties.with_delivery_mode(PERSISTENT),
            Self::Fanout { .. } => properties,
        }
    }
}

pub(crate) async fn cast(inner: &Inner, message: Outgoing<'_>) -> Result<(), RpcError> {
    let key = message.target.routing_key();
    let exchange = inner.config.exchange.as_str();
    let to = Destination::Queue {
        exchange,
        key: &key,
    };
    publish_confirmed(inner, &message, to).await
}

pub(crate) async fn fanout(inner: &Inner, message: Outgoing<'_>) -> Result<(), RpcError> {
    let exchange = fanout_exchange(&inner.config.exchange, &message.target.topic);
    let to = Destination::Fanout {
        exchange: &exchange,
    };
    publish_confirmed(inner, &message, to).await
}

/// Publishes until the broker confirms or refuses the message, sending it
/// again on the next connection when one is lost, up to the publish timeout.
async fn publish_confirmed(
    inner: &Inner,
    message: &Outgoing<'_>,
    to: Destination<'_>,
) -> Result<(), RpcError> {
    let Outgoing {
        target,
        method,
        payload,
    } = message;
    let deadline = Instant::now() + Duration::from_millis(inner.config.publish_timeout_ms);
    let (exchange, key) = to.address();
    loop {
        let session = live_session(inner, deadline, target, method).await?;
        if bounded(&session, deadline, to.declare(&session))
            .await
            .is_none()
        {
            continue;
        }
        let Some(confirm) = publish(&session, exchange, key, payload, to.properties()).await else {
            continue;
        };
        let Ok(result) = tokio::time::timeout_at(deadline, confirm).await else {
            session.mark_dead(&"no publisher confirm in time");
            continue;
        };
        if let Some(outcome) = confirmed(&session, result, target, method) {
            return outcome;
        }
    }
}

/// A caller's place in the pending table, left when it stops waiting.
struct Waiter<'a> {
    inner: &'a Inner,
    correlation: String,
    reply: oneshot::Receiver<Vec<u8>>,
}

impl<'a> Waiter<'a> {
    /// Registers a new correlation id on `session`'s reply queue.
    fn register(inner: &'a Inner, session: &Session) -> Self {
        let correlation = uuid::Uuid::new_v4().simple().to_string();
        let (reply_tx, reply) = oneshot::channel();
        let pending = Pending {
            session: session.id,
            reply: reply_tx,
        };
        inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(correlation.clone(), pending);
        Self {
            inner,
            correlation,
            reply,
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // Gone already when the reply came or the session failed its callers.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.correlation);
    }
}

/// Sends a call's request on the unconfirmed channel; false when it was not
/// sent (the session is then marked dead).
async fn send_request(
    session: &Session,
    exchange: &str,
    key: &str,
    payload: &[u8],
    correlation: &str,
    deadline: Instant,
) -> bool {
    // The broker drops the request once the caller has stopped waiting,
    // so a server that comes back later does not run stale calls.
    let ttl_ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .max(1);
    let properties = BasicProperties::default()
        .with_reply_to(session.reply_queue.as_str().into())
        .with_correlation_id(correlation.into())
        .with_expiration(ttl_ms.to_string().into())
        .with_content_type("application/json".into());
    let send = session.unconfirmed.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        payload,
        properties,
    );
    bounded(session, deadline, send).await.is_some()
}

pub(crate) async fn call(
    inner: &Inner,
    message: Outgoing<'_>,
    timeout: Duration,
) -> Result<Vec<u8>, RpcError> {
    let Outgoing {
        target,
        method,
        payload,
    } = message;
    let key = target.routing_key();
    let deadline = Instant::now() + timeout;
    let exchange = inner.config.exchange.as_str();
    let timed_out = || RpcError::Timeout {
        target: target.clone(),
        method: method.to_owned(),
        timeout,
    };
    loop {
        let session = match live_session(inner, deadline, target, method).await {
            Err(RpcError::Disconnected { .. }) => return Err(timed_out()),
            other => other?,
        };
        if bounded(&session, deadline, session.ensure_queue(exchange, &key))
            .await
            .is_none()
        {
            continue;
        }
        let mut waiter = Waiter::register(inner, &session);
        if !send_request(
            &session,
            exchange,
            &key,
            &payload,
            &waiter.correlation,
            deadline,
        )
        .await
        {
            // Not sent: try again on the next connection, within the deadline.
            continue;
        }
        return tokio::select! {
            reply = &mut waiter.reply => reply.map_err(|_| RpcError::ConnectionLost {
                // The session died and failed its callers.
                target: target.clone(),
                method: method.to_owned(),
            }),
            _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
        };
    }
}
