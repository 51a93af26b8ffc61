//! What the root crate's errors share.

/// A cause of any kind, kept as `#[source]` for its chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;
