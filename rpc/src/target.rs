//! Where a message goes: a topic, optionally narrowed to one host.

use std::fmt;

use crate::wire::ids::HostName;

/// A topic (`compute`) or a topic on one host (`compute.<host>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The service's topic.
    pub topic: String,
    /// The host, when only that host's worker may take the message.
    pub host: Option<HostName>,
}

impl Target {
    /// Any worker of the topic.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            host: None,
        }
    }

    /// Only the worker of the topic on `host`.
    pub fn host(topic: impl Into<String>, host: HostName) -> Self {
        Self {
            topic: topic.into(),
            host: Some(host),
        }
    }

    /// The routing key: `<topic>` or `<topic>.<host>`.
    pub fn routing_key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "{}.{}", self.topic, host),
            None => f.write_str(&self.topic),
        }
    }
}
