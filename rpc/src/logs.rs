//! Log lines on the bus: compute workers publish their `tracing` events
//! (JSON lines) to the topic exchange `<exchange>.logs`, routed by host;
//! `stratus tail` binds a queue of its own to one host or all. Lines are
//! fire-and-forget on a connection of their own: a slow or absent broker
//! drops log lines, never slows the worker.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;

use crate::config::RpcConfig;
use crate::transport::amqp::topology::{bind, consume, declare_private_queue};
use crate::wire::ids::HostName;

/// The exchange log lines travel on.
pub fn exchange(config: &RpcConfig) -> String {
    format!("{}.logs", config.exchange)
}

async fn open(config: &RpcConfig, name: &str) -> lapin::Result<(Connection, lapin::Channel)> {
    let connection = Connection::connect(
        &config.url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            exchange(config).as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel))
}

/// Publishes `lines` as `host`'s until the sender side closes; reconnects
/// after a loss, dropping what comes meanwhile.
pub async fn ship(config: RpcConfig, host: HostName, mut lines: mpsc::Receiver<String>) {
    let name = format!("stratus-logs@{host}");
    'connect: loop {
        let channel = match open(&config, &name).await {
            Ok((_connection, channel)) => channel,
            Err(_) => {
                // Drain while waiting, so the worker's channel never fills.
                let until = tokio::time::Instant::now() + Duration::from_secs(5);
                while let Ok(next) = tokio::time::timeout_at(until, lines.recv()).await {
                    if next.is_none() {
                        return;
                    }
                }
                continue 'connect;
            }
        };
        while let Some(line) = lines.recv().await {
            let sent = channel
                .basic_publish(
                    exchange(&config).as_str().into(),
                    host.as_str().into(),
                    BasicPublishOptions::default(),
                    line.as_bytes(),
                    BasicProperties::default(),
                )
                .await;
            if sent.is_err() {
                continue 'connect;
            }
        }
        return;
    }
}

/// Log lines of `host` (every host when `None`) from now on.
pub async fn tail(
    config: &RpcConfig,
    host: Option<&HostName>,
) -> lapin::Result<impl futures::Stream<Item = String>> {
    let (connection, channel) = open(config, "stratus-tail").await?;
    let queue = declare_private_queue(&channel).await?;
    let key = host.map_or("#", HostName::as_str);
    bind(&channel, &queue, &exchange(config), key).await?;
    let consumer = consume(&channel, &queue, "stratus-tail", true).await?;
    Ok(consumer.filter_map(move |delivery| {
        // The connection lives as long as the stream.
        let _keep = &connection;
        let line = delivery
            .ok()
            .map(|d| String::from_utf8_lossy(&d.data).into_owned());
        async move { line }
    }))
}
