//! [`RpcClient`] encodes envelopes and decodes replies. Each file in this
//! folder declares one service's API once (`declare_service!`): its topic, its
//! method names, a typed client (`ComputeClient`, …) and the trait its server
//! implements (`ComputeApi`, …).

pub mod compute;
pub mod conductor;
pub mod network;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::RequestContext;
use crate::envelope::{Reply, encode_request};
use crate::error::{RemoteError, RpcError, kinds};
use crate::target::Target;
use crate::transport::{Outgoing, Transport};

pub use compute::{ComputeApi, ComputeClient};
pub use conductor::{ConductorApi, ConductorClient};
pub use network::{NetworkApi, NetworkClient};
pub use scheduler::{SchedulerApi, SchedulerClient};

/// Sends requests over a transport with a default call timeout.
#[derive(Debug, Clone)]
pub struct RpcClient {
    transport: Arc<dyn Transport>,
    call_timeout: Duration,
}

impl RpcClient {
    /// A client over `transport` whose calls wait `call_timeout` by default.
    pub fn new(transport: Arc<dyn Transport>, call_timeout: Duration) -> Self {
        Self {
            transport,
            call_timeout,
        }
    }

    /// The transport underneath.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// How long calls wait by default.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// One-way message; Ok once the bus holds it.
    pub async fn cast<A: Serialize + ?Sized>(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: &A,
    ) -> Result<(), RpcError> {
        let payload = encode(target, method, ctx, args)?;
        let message = Outgoing {
            target,
            method,
            payload,
        };
        self.transport.cast(message).await
    }

    /// One-way message to every server of `topic`.
    pub async fn fanout_cast<A: Serialize + ?Sized>(
        &self,
        ctx: &RequestContext,
        topic: &str,
        method: &str,
        args: &A,
    ) -> Result<(), RpcError> {
        let target = Target::topic(topic);
        let payload = encode(&target, method, ctx, args)?;
        let message = Outgoing {
            target: &target,
            method,
            payload,
        };
        self.transport.fanout_cast(message).await
    }

    /// Whether some server of `topic` answers within `timeout`.
    pub async fn ping(
        &self,
        ctx: &RequestContext,
        topic: &str,
        timeout: Duration,
    ) -> Result<(), RpcError> {
        let target = Target::topic(topic);
        self.call_with_timeout(ctx, &target, crate::server::PING, &(), timeout)
            .await
    }

    /// Request with the default timeout.
    pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: &A,
    ) -> Result<R, RpcError> {
        self.call_with_timeout(ctx, target, method, args, self.call_timeout)
            .await
    }

    /// Request that waits at most `timeout` for its reply.
    pub async fn call_with_timeout<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        let payload = encode(target, method, ctx, args)?;
        let started = std::time::Instant::now();
        let message = Outgoing {
            target,
            method,
            payload,
        };
        let answered = self.transport.call(message, timeout).await;
        crate::metrics::metrics()
            .rpc_calls
            .get_or_create(&crate::metrics::labels(&[
                ("method", method),
                ("outcome", if answered.is_ok() { "ok" } else { "error" }),
            ]))
            .observe(started.elapsed().as_secs_f64());
        decode_reply(target, method, &answered?)
    }
}

/// The result in a reply, or the error the callee raised.
fn decode_reply<R: DeserializeOwned>(
    target: &Target,
    method: &str,
    bytes: &[u8],
) -> Result<R, RpcError> {
    let decode_error = |source| RpcError::Decode {
        target: target.clone(),
        method: method.to_owned(),
        source,
    };
    let remote_error = |source| RpcError::Remote {
        target: target.clone(),
        method: method.to_owned(),
        source,
    };
    let reply: Reply = serde_json::from_slice(bytes).map_err(decode_error)?;
    if let Some(err) = reply.err {
        return Err(remote_error(err));
    }
    if reply.v != crate::envelope::ENVELOPE_VERSION {
        return Err(remote_error(RemoteError::new(
            kinds::UNSUPPORTED_VERSION,
            format!("reply envelope version {}", reply.v),
        )));
    }
    let ok = reply.ok.as_deref().map_or("null", |raw| raw.get());
    serde_json::from_str(ok).map_err(decode_error)
}

fn encode<A: Serialize + ?Sized>(
    target: &Target,
    method: &str,
    ctx: &RequestContext,
    args: &A,
) -> Result<Vec<u8>, RpcError> {
    encode_request(method, ctx, args).map_err(|source| RpcError::Encode {
        target: target.clone(),
        method: method.to_owned(),
        source,
    })
}
