//! What the tests of every stratus crate share, so each test owns (and on
//! `Drop` cleans) what it touches without carrying its own copy of how.
//!
//! Product crates only dev-depend on this crate; it depends on nothing of
//! theirs but `stratus-rpc`'s wire types.

/// RabbitMQ: the shared broker's URL, a vhost of the test's own, a private node.
pub mod broker;
/// Host commands that must succeed, with their stderr in the panic.
pub mod command;
/// SQLite and PostgreSQL databases of the test's own.
pub mod db;
/// Polling until a condition holds or a deadline passes.
pub mod eventually;
/// Wire-type values tests build over and over: run requests, images, host reports.
pub mod fixtures;
/// Rendered text held against files under `tests/golden`.
pub mod golden;
/// Disk images: empty qcow2 files, overlays and the tiny guest image.
pub mod images;
/// Unique names for what parallel tests create.
pub mod names;
/// Scratch network namespaces, removed (with their processes) on drop.
pub mod netns;
/// Free loopback ports.
pub mod ports;
/// A private PostgreSQL server, started on first use.
mod postgres;
/// Processes: what runs under a process, every command line.
pub mod process;
/// Stand-ins for services, answering from memory.
pub mod stand_in;
/// The workspace: its root and the `stratus` binary built fresh.
pub mod workspace;

pub use command::sh;
pub use db::TestDb;
pub use eventually::{eventually, eventually_blocking, wait_until};
pub use names::short_id;
pub use netns::Netns;
pub use ports::free_port;
