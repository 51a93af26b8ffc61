//! Stand-ins for services a test talks to: they answer at once, from
//! memory, and keep what they were sent for the test to look at.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::{Handler, HandlerError, RequestContext};

/// A service's stand-in: answers each request synchronously.
pub trait StandIn: Send + Sync + 'static {
    /// The answer to `method` with its still-encoded `args`.
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError>;
}

/// Serves a [`StandIn`] as an RPC handler (the request context is not asked).
struct Serving<T>(Arc<T>);

#[async_trait]
impl<T: StandIn> Handler for Serving<T> {
    async fn handle(
        &self,
        _: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        self.0.answer(method, args)
    }
}

/// The handler that serves `stand_in`; the test keeps its own `Arc` to look in.
pub fn handler<T: StandIn>(stand_in: &Arc<T>) -> Arc<dyn Handler> {
    Arc::new(Serving(stand_in.clone()))
}
