//! Errors of the RPC layer: what a caller sees, and what a handler raises.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::target::Target;

/// An error raised by the remote side of a call, carried back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RemoteError {
    /// A stable, machine-readable name (`UnknownMethod`, `NoMoreFixedIps`, …).
    pub kind: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl RemoteError {
    /// Builds a remote error of a kind with a message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A remote error of a kind whose message is `error` with its causes:
    /// the caller sees no more of it than this text.
    pub fn from_error(kind: impl Into<String>, error: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(kind, error_chain(error))
    }
}

/// An error and each of its causes, joined by `: `, for readers who get
/// text rather than the error (a state reason, a log line, an RPC error's
/// message); a cause whose text an outer error already printed is not
/// repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

/// Kinds of [`RemoteError`] the RPC layer itself raises.
pub mod kinds {
    /// The receiving service has no such method.
    pub const UNKNOWN_METHOD: &str = "UnknownMethod";
    /// The arguments do not decode into the method's type.
    pub const INVALID_ARGUMENTS: &str = "InvalidArguments";
    /// The message is not a request envelope at all.
    pub const MALFORMED_MESSAGE: &str = "MalformedMessage";
    /// The envelope's major version is not one this service speaks.
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";
    /// The service knows the method but does not do it yet.
    pub const NOT_IMPLEMENTED: &str = "NotImplemented";
    /// The handler panicked.
    pub const INTERNAL: &str = "InternalError";
}

/// What a handler returns when a method fails.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// No such method on this service; acked, and a call gets a remote error.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// The arguments do not fit the method.
    #[error("invalid arguments for {method}")]
    InvalidArguments {
        /// The method whose arguments failed to decode.
        method: String,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Worth trying again later: the message is redelivered.
    #[error("retryable: {0}")]
    Retryable(RemoteError),
    /// Final: the message is acked and a call gets this error back.
    #[error("{0}")]
    Permanent(RemoteError),
}

impl HandlerError {
    /// A permanent error of a kind with a message.
    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent(RemoteError::new(kind, message))
    }

    /// The error as the caller will see it.
    pub fn to_remote(&self) -> RemoteError {
        match self {
            Self::UnknownMethod(method) => {
                RemoteError::new(kinds::UNKNOWN_METHOD, format!("no method {method:?}"))
            }
            Self::InvalidArguments { method, source } => RemoteError::new(
                kinds::INVALID_ARGUMENTS,
                format!("arguments of {method}: {source}"),
            ),
            Self::Retryable(e) | Self::Permanent(e) => e.clone(),
        }
    }
}

/// What a caller of `cast`, `call` or `fanout_cast` can get back. Errors
/// of one message carry its [`Target`] (a topic, and a host when one was
/// named) and method, so a caller can say which service failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No reply came within the call's timeout.
    #[error("call {method} to {target} timed out after {timeout:?}")]
    Timeout {
        /// Where the call went.
        target: Target,
        /// Method called.
        method: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The callee raised an error.
    #[error("call {method} to {target} failed remotely")]
    Remote {
        /// Where the call went.
        target: Target,
        /// Method called.
        method: String,
        /// The callee's error.
        #[source]
        source: RemoteError,
    },
    /// The connection carrying the call's reply queue was lost before a reply
    /// came; the request may or may not have run.
    #[error("connection lost while {method} to {target} waited for its reply")]
    ConnectionLost {
        /// Where the call went.
        target: Target,
        /// Method called.
        method: String,
    },
    /// No broker connection could be had within the publish timeout.
    #[error(
        "not connected to the message broker after waiting {waited:?} to send {method} to {target}"
    )]
    Disconnected {
        /// Where the message was going.
        target: Target,
        /// Method of the message.
        method: String,
        /// How long the sender waited for a connection.
        waited: Duration,
    },
    /// The broker refused the message (publisher confirm nack).
    #[error("broker refused {method} to {target}")]
    Nacked {
        /// Where the message was going.
        target: Target,
        /// Method of the message.
        method: String,
    },
    /// Arguments could not be encoded.
    #[error("encoding arguments of {method} to {target}")]
    Encode {
        /// Where the message was going.
        target: Target,
        /// Method being sent.
        method: String,
        /// The encoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A reply could not be decoded into the expected type.
    #[error("decoding the reply to {method} from {target}")]
    Decode {
        /// Where the call went.
        target: Target,
        /// Method whose reply failed to decode.
        method: String,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Setting up a consumer or talking to the broker failed.
    #[error("AMQP {action}")]
    Amqp {
        /// What was being done.
        action: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The first connection to the broker failed.
    #[error("connecting to the message broker at {url}")]
    Connect {
        /// The broker URL, password hidden.
        url: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The transport was shut down.
    #[error("the RPC transport is closed")]
    Closed,
}

impl RpcError {
    /// The remote error, if the callee raised one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Self::Remote { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Where the failed message was going, when the error is about one message.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::Timeout { target, .. }
            | Self::Remote { target, .. }
            | Self::ConnectionLost { target, .. }
            | Self::Disconnected { target, .. }
            | Self::Nacked { target, .. }
            | Self::Encode { target, .. }
            | Self::Decode { target, .. } => Some(target),
            Self::Amqp { .. } | Self::Connect { .. } | Self::Closed => None,
        }
    }

    /// Builds an AMQP error with what was being done.
    pub(crate) fn amqp(action: impl Into<String>, source: lapin::Error) -> Self {
        Self::Amqp {
            action: action.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(error_chain(&Outer(io())), "outer: disk full");
        assert_eq!(error_chain(&Repeats(io())), "repeats: disk full");
    }
}
