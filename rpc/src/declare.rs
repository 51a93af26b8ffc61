//! [`declare_service!`]: a service's RPC API written once, from which come its
//! method names, its typed client, the trait its server implements and the
//! dispatch from method names to that trait's methods.
//!
//! ```text
//! declare_service! {
//!     /// The topic the network controller serves.
//!     topic "network";
//!     /// Talks to the network controller.
//!     client NetworkClient;
//!     /// What the network controller does for its callers.
//!     api NetworkApi;
//!     methods {
//!         /// Give an instance its fixed IP (idempotent).
//!         ALLOCATE_FIXED_IP: call allocate_fixed_ip(request: AllocateFixedIp) -> FixedIp;
//!     }
//! }
//! ```
//!
//! A method's wire name is its function's name; the constant of that name goes
//! into `methods`. How a method is sent:
//! - `cast`: one-way, to any server of the topic;
//! - `cast_to_host`: one-way, to the server on one host (`<topic>.<host>`);
//! - `call`: request and reply, from any server of the topic;
//! - `call_to_host`: request and reply, from the server on one host;
//! - `fanout_cast`: one-way, to every server of the topic.
//!
//! The client's functions take their argument as anything that borrows as the
//! argument's type, so callers pass it by value or by reference alike. The
//! server trait's methods take it by value and return the reply (`()` for a
//! cast). A server type says which API it serves with
//! `impl Serves for MyService { type Api = dyn MyApi; }` and is then a
//! [`Handler`](crate::Handler).

/// Declares one service's RPC API; see the module documentation.
macro_rules! declare_service {
    (
        $(#[$topic_doc:meta])*
        topic $topic:literal;
        $(#[$client_doc:meta])*
        client $client:ident;
        $(#[$api_doc:meta])*
        api $api:ident;
        methods {
            $(
                $(#[$doc:meta])*
                $name_const:ident: $kind:ident $name:ident ($($arg:ident: $ty:ty)?) $(-> $ret:ty)?;
            )*
        }
    ) => {
        $(#[$topic_doc])*
        pub const TOPIC: &str = $topic;

        /// Method names of the topic, as they travel.
        pub mod methods {
            $(
                $(#[$doc])*
                pub const $name_const: &str = stringify!($name);
            )*
            /// Every method, for logs and `--help`.
            pub const ALL: &[&str] = &[$($name_const),*];
        }

        $(#[$client_doc])*
        #[derive(Debug, Clone)]
        pub struct $client {
            rpc: $crate::RpcClient,
        }

        impl $client {
            /// A client over `rpc`.
            pub fn new(rpc: $crate::RpcClient) -> Self {
                Self { rpc }
            }

            $(
                $crate::declare::client_fn! {
                    $kind [$(#[$doc])*] $name $name_const ($($arg: $ty)?) [$($ret)?]
                }
            )*
        }

        $(#[$api_doc])*
        #[async_trait::async_trait]
        pub trait $api: Send + Sync + 'static {
            $(
                $(#[$doc])*
                async fn $name(
                    &self,
                    ctx: &$crate::RequestContext,
                    $($arg: $ty)?
                ) -> $crate::Handled<$crate::declare::reply!($($ret)?)>;
            )*
        }

        #[async_trait::async_trait]
        impl<S: $api> $crate::handler::Dispatch<S> for dyn $api {
            async fn dispatch(
                service: &S,
                ctx: &$crate::RequestContext,
                method: &str,
                args: &serde_json::value::RawValue,
            ) -> Result<Box<serde_json::value::RawValue>, $crate::HandlerError> {
                match method {
                    $(
                        methods::$name_const => {
                            $(let $arg: $ty = $crate::handler::decode_args(method, args)?;)?
                            let reply = service.$name(ctx, $($arg)?).await?;
                            $crate::handler::encode_result(&reply)
                        }
                    )*
                    other => Err($crate::HandlerError::UnknownMethod(other.to_owned())),
                }
            }
        }
    };
}
pub(crate) use declare_service;

/// The reply type of a method: `()` when the declaration names none.
macro_rules! reply {
    () => {
        ()
    };
    ($ret:ty) => {
        $ret
    };
}
pub(crate) use reply;

/// The argument a client function sends: the declared one, or `()`.
macro_rules! sent_arg {
    () => {
        &()
    };
    ($arg:ident: $ty:ty) => {
        ::std::borrow::Borrow::<$ty>::borrow(&$arg)
    };
}
pub(crate) use sent_arg;

/// One typed client function, by how its method is sent.
macro_rules! client_fn {
    (cast $($rest:tt)*) => {
        $crate::declare::client_fn!(@send cast [] [&$crate::Target::topic(TOPIC)] $($rest)*);
    };
    (cast_to_host $($rest:tt)*) => {
        $crate::declare::client_fn!(@send cast [host: &$crate::wire::ids::HostName,]
            [&$crate::Target::host(TOPIC, host.clone())] $($rest)*);
    };
    (call $($rest:tt)*) => {
        $crate::declare::client_fn!(@send call [] [&$crate::Target::topic(TOPIC)] $($rest)*);
    };
    (call_to_host $($rest:tt)*) => {
        $crate::declare::client_fn!(@send call [host: &$crate::wire::ids::HostName,]
            [&$crate::Target::host(TOPIC, host.clone())] $($rest)*);
    };
    (fanout_cast $($rest:tt)*) => {
        $crate::declare::client_fn!(@send fanout_cast [] [TOPIC] $($rest)*);
    };
    (
        @send $send:ident [$($host:tt)*] [$target:expr]
        [$(#[$doc:meta])*] $name:ident $name_const:ident ($($arg:ident: $ty:ty)?) [$($ret:ty)?]
    ) => {
        $(#[$doc])*
        pub async fn $name(
            &self,
            ctx: &$crate::RequestContext,
            $($host)*
            $($arg: impl ::std::borrow::Borrow<$ty> + Send,)?
        ) -> Result<$crate::declare::reply!($($ret)?), $crate::RpcError> {
            let arg = $crate::declare::sent_arg!($($arg: $ty)?);
            self.rpc.$send(ctx, $target, methods::$name_const, arg).await
        }
    };
}
pub(crate) use client_fn;
