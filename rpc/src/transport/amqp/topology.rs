//! Names and declarations on the broker, shared by senders, servers, the
//! reply queue and the log tail.

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer, ExchangeKind};

/// The work queue of a routing key on an exchange.
pub(crate) fn queue_name(exchange: &str, routing_key: &str) -> String {
    format!("{exchange}.{routing_key}")
}

/// The fanout exchange of a topic.
pub(crate) fn fanout_exchange(exchange: &str, topic: &str) -> String {
    format!("{exchange}.{topic}.fanout")
}

/// Declares the durable queue `<exchange>.<routing_key>` and binds it.
pub(crate) async fn declare_work_queue(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    expiry_ms: Option<u64>,
) -> lapin::Result<String> {
    let name = queue_name(exchange, routing_key);
    let mut arguments = FieldTable::default();
    if let Some(ms) = expiry_ms {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    }
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    bind(channel, &name, exchange, routing_key).await?;
    Ok(name)
}

/// Declares a topic's fanout exchange, which lives while servers are bound
/// to it.
pub(crate) async fn declare_fanout_exchange(channel: &Channel, name: &str) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            options,
            FieldTable::default(),
        )
        .await
}

/// Declares a queue of the broker's naming that only this connection uses
/// and that vanishes with it; returns its name.
pub(crate) async fn declare_private_queue(channel: &Channel) -> lapin::Result<String> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive().auto_delete(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue.name().to_string())
}

/// Binds `queue` to `exchange` with `routing_key`.
pub(crate) async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Consumes `queue`, each delivery acked as it arrives (`no_ack`), or acked
/// by the consumer when `no_ack` is false.
pub(crate) async fn consume(
    channel: &Channel,
    queue: &str,
    tag: &str,
    no_ack: bool,
) -> lapin::Result<Consumer> {
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    channel
        .basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
}
