//! The `[rpc]` section of the configuration.

use serde::{Deserialize, Serialize};

/// Which transport carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// RabbitMQ over AMQP 0-9-1: services in separate processes or hosts.
    Amqp,
    /// The in-process bus: every service in one process (`all-in-one`).
    Memory,
}

/// How services reach each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// `amqp` or `memory`. `stratus all-in-one` uses `memory` whatever this says.
    pub backend: Backend,
    /// The broker, as an AMQP URL: `amqp://user:password@host:5672/<vhost>`
    /// (`%2f` is the default vhost `/`).
    pub url: String,
    /// The topic exchange every queue binds to; deployments sharing a broker
    /// use different names.
    pub exchange: String,
    /// Unacknowledged messages per consumer, which is also how many handlers
    /// of one queue run at once.
    pub prefetch: u16,
    /// How long a call waits for its reply unless the caller says otherwise.
    pub call_timeout_ms: u64,
    /// How long a cast waits for a broker connection before failing.
    pub publish_timeout_ms: u64,
    /// First delay before reconnecting to a lost broker; doubles per attempt.
    pub reconnect_min_ms: u64,
    /// Longest delay between reconnection attempts.
    pub reconnect_max_ms: u64,
    /// Delay before a message whose handler failed with a retryable error is
    /// redelivered.
    pub retry_delay_ms: u64,
    /// Delete work queues that have gone unused (no consumer, no
    /// declaration) this long, messages included; the exchange goes when its
    /// last queue does. Unset (the default) keeps queues until an operator
    /// removes them; set it where hosts and deployments come and go (tests).
    pub queue_expiry_ms: Option<u64>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Amqp,
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: "stratus".to_owned(),
            prefetch: 64,
            call_timeout_ms: 60_000,
            publish_timeout_ms: 30_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            retry_delay_ms: 1_000,
            queue_expiry_ms: None,
        }
    }
}
