//! The versioned JSON envelope of requests and replies.
//!
//! Arguments and results stay raw JSON until a handler or caller decodes them
//! into their own types, so the envelope is parsed once and the payload once.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::context::RequestContext;
use crate::error::RemoteError;

/// The major version of the envelope this build speaks. A message with a
/// different major version is refused with a `RemoteError`, not guessed at.
pub const ENVELOPE_VERSION: u32 = 1;

/// A request as it travels: method, arguments and context.
#[derive(Debug, Serialize)]
pub struct Request<'a, A: Serialize + ?Sized> {
    /// Envelope version.
    pub v: u32,
    /// The method to run on the receiving service.
    pub method: &'a str,
    /// Who asked, and the request id to log under.
    pub ctx: &'a RequestContext,
    /// The method's arguments.
    pub args: &'a A,
}

/// A request as received, with its arguments still undecoded.
#[derive(Debug, Deserialize)]
pub struct IncomingRequest {
    /// Envelope version.
    pub v: u32,
    /// The method to run.
    pub method: String,
    /// Who asked.
    pub ctx: RequestContext,
    /// Arguments, decoded by the handler into the method's own type.
    pub args: Box<RawValue>,
}

/// A reply to a call: either a result or the callee's error.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    /// Envelope version.
    pub v: u32,
    /// The result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Box<RawValue>>,
    /// The error the callee raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<RemoteError>,
}

/// Encodes a request.
pub fn encode_request<A: Serialize + ?Sized>(
    method: &str,
    ctx: &RequestContext,
    args: &A,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Request {
        v: ENVELOPE_VERSION,
        method,
        ctx,
        args,
    })
}

/// Encodes a reply; a result that cannot be encoded becomes a remote error.
pub fn encode_reply(result: Result<Box<RawValue>, RemoteError>) -> Vec<u8> {
    let reply = match result {
        Ok(ok) => Reply {
            v: ENVELOPE_VERSION,
            ok: Some(ok),
            err: None,
        },
        Err(err) => Reply {
            v: ENVELOPE_VERSION,
            ok: None,
            err: Some(err),
        },
    };
    // A Reply holds only strings and already-valid raw JSON: encoding cannot fail.
    serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"v\":1}".to_vec())
}
