//! Nova-style RPC for stratus: casts, calls and fanout casts over topics.
//!
//! Services talk through a [`Transport`]: AMQP on RabbitMQ (lapin) when they
//! run as separate processes, or the in-process bus when `stratus all-in-one`
//! runs them together. Both share one message format and one consumer loop
//! (`server`), so they behave alike.

/// Each service's API declared once: typed clients, server traits, method names.
pub mod clients;
pub mod config;
pub mod context;
/// `declare_service!`: each service's API declared once.
pub(crate) mod declare;
pub mod envelope;
pub mod error;
pub mod handler;
pub mod logs;
pub mod metrics;
pub(crate) mod server;
pub use server::PING;
pub mod target;
pub mod transport;
/// Types that cross service boundaries.
pub mod wire;

pub use clients::RpcClient;
pub use config::RpcConfig;
pub use context::RequestContext;
pub use error::{HandlerError, RemoteError, RpcError};
pub use handler::{Handled, Handler, Serves};
pub use target::Target;
pub use transport::{ServerHandle, Transport};
