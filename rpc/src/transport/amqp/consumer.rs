//! Servers on AMQP: one channel per consumed queue, bounded prefetch, one task
//! per delivery, manual ack after the handler.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::{BasicProperties, Channel};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::Inner;
use super::session::Session;
use super::topology::{
    self, bind, declare_fanout_exchange, declare_private_queue, declare_work_queue, fanout_exchange,
};
use crate::handler::Handler;
use crate::server::{Disposition, process};
use crate::wire::ids::HostName;

/// A server as registered, re-declared on every new session.
pub(crate) struct ServerReg {
    pub topic: String,
    pub host: Option<HostName>,
    pub handler: Arc<dyn Handler>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

/// Declares the server's queues on `session` and starts consuming them.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    reg: &Arc<ServerReg>,
) -> lapin::Result<()> {
    let exchange = inner.config.exchange.as_str();
    let mut keys = vec![reg.topic.clone()];
    if let Some(host) = &reg.host {
        keys.push(crate::Target::host(reg.topic.clone(), host.clone()).routing_key());
    }
    for key in keys {
        let channel = qos_channel(session, inner.config.prefetch).await?;
        let queue =
            declare_work_queue(&channel, exchange, &key, inner.config.queue_expiry_ms).await?;
        consume(inner, session, reg, channel, queue).await?;
    }

    let channel = qos_channel(session, inner.config.prefetch).await?;
    let fanout = fanout_exchange(exchange, &reg.topic);
    declare_fanout_exchange(&channel, &fanout).await?;
    let queue = declare_private_queue(&channel).await?;
    bind(&channel, &queue, &fanout, "").await?;
    consume(inner, session, reg, channel, queue).await
}

async fn qos_channel(session: &Session, prefetch: u16) -> lapin::Result<Channel> {
    let channel = session.connection.create_channel().await?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await?;
    Ok(channel)
}

async fn consume(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    reg: &Arc<ServerReg>,
    channel: Channel,
    queue: String,
) -> lapin::Result<()> {
    let mut consumer = topology::consume(&channel, &queue, "", false).await?;
    let (session, reg) = (session.clone(), reg.clone());
    let retry_delay = Duration::from_millis(inner.config.retry_delay_ms);
    let tracker = reg.tracker.clone();
    tracker.spawn(async move {
        loop {
            let delivery = tokio::select! {
                _ = reg.cancel.cancelled() => {
                    let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                    break;
                }
                _ = session.dead.cancelled() => break,
                d = consumer.next() => d,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    let (session, handler, queue) =
                        (session.clone(), reg.handler.clone(), queue.clone());
                    reg.tracker.spawn(async move {
                        handle(&session, handler.as_ref(), &queue, delivery, retry_delay).await;
                    });
                }
                Some(Err(e)) => {
                    session.mark_dead(&e);
                    break;
                }
                None => {
                    // The broker cancelled the consumer (queue deleted, or the
                    // channel closed): a fresh session re-declares it.
                    session.mark_dead(&format!("consumer of {queue} ended"));
                    break;
                }
            }
        }
    });
    Ok(())
}

async fn handle(
    session: &Session,
    handler: &dyn Handler,
    queue: &str,
    delivery: Delivery,
    retry_delay: Duration,
) {
    let reply_to = delivery.properties.reply_to().clone();
    let correlation_id = delivery.properties.correlation_id().clone();
    let is_call = reply_to.is_some() && correlation_id.is_some();
    let processed = process(handler, queue, &delivery.data, is_call).await;
    match processed.disposition {
        Disposition::Ack => {
            if let (Some(reply), Some(to), Some(correlation)) =
                (processed.reply, reply_to, correlation_id)
            {
                let properties = BasicProperties::default()
                    .with_correlation_id(correlation)
                    .with_content_type("application/json".into());
                let sent = session
                    .unconfirmed
                    .basic_publish(
                        "".into(),
                        to,
                        BasicPublishOptions::default(),
                        &reply,
                        properties,
                    )
                    .await;
                if let Err(e) = sent {
                    warn!(queue, error = %e, "could not send a reply; the caller will time out");
                }
            }
            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                // The broker redelivers an unacked message on the next connection.
                warn!(queue, error = %e, "could not ack");
            }
        }
        Disposition::Requeue => {
            tokio::time::sleep(retry_delay).await;
            let nack = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            if let Err(e) = delivery.acker.nack(nack).await {
                warn!(queue, error = %e, "could not requeue");
            }
        }
    }
}
