//! The server side of RPC: a [`Handler`] runs a service's methods. A service
//! whose API is declared in [`crate::clients`] implements that API's trait in
//! its `service.rs` and says so with [`Serves`]; the declaration's
//! [`Dispatch`] then makes it a handler.

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::context::RequestContext;
use crate::error::{HandlerError, RemoteError, kinds};

/// What a served method returns: its reply, or why it failed.
pub type Handled<T = ()> = Result<T, HandlerError>;

/// Runs the methods of one service.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs `method` with its still-encoded arguments; the result is returned
    /// to a caller, or dropped for a cast.
    async fn handle(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError>;
}

/// Turns a method name and its encoded arguments into a call of the API trait
/// that `S` implements; generated for `dyn <Api>` by each service declaration.
#[async_trait]
pub trait Dispatch<S: ?Sized> {
    /// Decodes the arguments, runs the method on `service`, encodes its reply.
    async fn dispatch(
        service: &S,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError>;
}

/// A service that implements a declared API: `type Api = dyn ComputeApi;`.
pub trait Serves: Send + Sync + 'static {
    /// The API's trait object type, whose dispatch runs this service.
    type Api: ?Sized + Dispatch<Self>;
}

#[async_trait]
impl<S: Serves> Handler for S {
    async fn handle(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        S::Api::dispatch(self, ctx, method, args).await
    }
}

/// Decodes a method's arguments into its type.
pub fn decode_args<T: DeserializeOwned>(method: &str, args: &RawValue) -> Result<T, HandlerError> {
    serde_json::from_str(args.get()).map_err(|source| HandlerError::InvalidArguments {
        method: method.to_owned(),
        source,
    })
}

/// Encodes a method's result for the reply.
pub fn encode_result<T: Serialize>(value: &T) -> Result<Box<RawValue>, HandlerError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        HandlerError::Permanent(RemoteError::new(
            kinds::INTERNAL,
            format!("encoding the result: {e}"),
        ))
    })
}

/// The raw JSON `null`, the result of methods that return nothing.
pub fn null() -> Box<RawValue> {
    // "null" is valid JSON.
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!())
}

/// The error of a method a service declares but does not do yet.
pub fn not_implemented(service: &str, method: &str) -> HandlerError {
    HandlerError::permanent(
        kinds::NOT_IMPLEMENTED,
        format!("{service} does not implement {method} yet"),
    )
}
