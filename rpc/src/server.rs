//! What happens to one received message, the same for every transport: decode,
//! dispatch to the handler, and decide between ack and redelivery.

use std::error::Error;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde_json::value::RawValue;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::envelope::{ENVELOPE_VERSION, IncomingRequest, encode_reply};
use crate::error::{HandlerError, RemoteError, kinds};
use crate::handler::Handler;

/// What the transport does with the message once it is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Done with, successfully or not: remove it from the queue.
    Ack,
    /// Put it back to be delivered again.
    Requeue,
}

/// The outcome of processing one message.
#[derive(Debug)]
pub(crate) struct Processed {
    /// The encoded reply, when the message was a call and is not redelivered.
    pub reply: Option<Vec<u8>>,
    /// Ack or requeue.
    pub disposition: Disposition,
}

/// The method every server answers with null, whatever its topic.
pub const PING: &str = "ping";

/// Decodes and runs one message. `queue` names where it came from, for logs;
/// `is_call` says whether a reply is wanted.
pub(crate) async fn process(
    handler: &dyn Handler,
    queue: &str,
    data: &[u8],
    is_call: bool,
) -> Processed {
    let request: IncomingRequest = match serde_json::from_slice(data) {
        Ok(request) => request,
        Err(e) => {
            error!(
                queue,
                error = &e as &dyn Error,
                "rejecting undecodable message"
            );
            let refusal = RemoteError::new(
                kinds::MALFORMED_MESSAGE,
                format!("not a request envelope: {e}"),
            );
            return finish(is_call, Err(refusal));
        }
    };
    let span = info_span!(
        "rpc",
        queue,
        method = %request.method,
        request_id = %request.ctx.request_id,
    );
    run(handler, &request, is_call).instrument(span).await
}

/// Runs a decoded request: refuses an envelope version this service does not
/// speak, answers a ping, and hands anything else to the handler.
async fn run(handler: &dyn Handler, request: &IncomingRequest, is_call: bool) -> Processed {
    if request.v != ENVELOPE_VERSION {
        error!(
            version = request.v,
            "rejecting message of unsupported envelope version"
        );
        let refusal = RemoteError::new(
            kinds::UNSUPPORTED_VERSION,
            format!(
                "envelope version {} (this service speaks {ENVELOPE_VERSION})",
                request.v
            ),
        );
        return finish(is_call, Err(refusal));
    }
    // Every service answers a ping the same way: liveness for
    // `stratus service list`, without each handler knowing of it.
    if request.method == PING {
        return finish(is_call, Ok(crate::handler::null()));
    }
    let outcome = AssertUnwindSafe(handler.handle(&request.ctx, &request.method, &request.args))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(HandlerError::permanent(
                kinds::INTERNAL,
                "the handler panicked",
            ))
        });
    conclude(is_call, outcome)
}

/// Acks a handled message, or requeues it when its failure is worth retrying.
fn conclude(is_call: bool, outcome: Result<Box<RawValue>, HandlerError>) -> Processed {
    match outcome {
        Ok(result) => {
            debug!("handled");
            finish(is_call, Ok(result))
        }
        Err(HandlerError::Retryable(e)) => {
            warn!(error = %e, "retryable failure; message will be redelivered");
            Processed {
                reply: None,
                disposition: Disposition::Requeue,
            }
        }
        Err(e @ HandlerError::UnknownMethod(_)) => {
            error!(error = %e, "rejecting message for an unknown method");
            finish(is_call, Err(e.to_remote()))
        }
        Err(e) => {
            warn!(error = &e as &dyn Error, "failed");
            finish(is_call, Err(e.to_remote()))
        }
    }
}

fn finish(is_call: bool, result: Result<Box<RawValue>, RemoteError>) -> Processed {
    Processed {
        reply: is_call.then(|| encode_reply(result)),
        disposition: Disposition::Ack,
    }
}
