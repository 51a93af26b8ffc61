//! The hypervisor behind a narrow trait: libvirt for real guests, a fake that
//! keeps domains in memory for embedded and scale tests.

pub mod fake;
pub mod libvirt;

use async_trait::async_trait;

use crate::state::{InvalidTransition, PowerState};
use crate::xml::DomainSpec;

/// A hypervisor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No such domain.
    #[error("domain {0} not found")]
    NotFound(String),
    /// The domain exists already.
    #[error("domain {0} exists already")]
    Exists(String),
    /// The operation does not fit the domain's state.
    #[error("domain {domain}: {refused}")]
    Invalid {
        /// The domain.
        domain: String,
        /// The refused move (a rule of the state machine, not a cause
        /// from below, so it is part of this error's own text).
        refused: InvalidTransition,
    },
    /// The domain did not reach the state in time.
    #[error("domain {domain} not {wanted:?} after {waited:?}")]
    Timeout {
        /// The domain.
        domain: String,
        /// The state waited for.
        wanted: PowerState,
        /// How long.
        waited: std::time::Duration,
    },
    /// libvirt refused or failed.
    #[error("libvirt {action} {domain}: {message}")]
    Libvirt {
        /// What was attempted.
        action: &'static str,
        /// The domain (or the URI, for connections).
        domain: String,
        /// libvirt's message.
        message: String,
    },
}

/// Runs domains.
#[async_trait]
pub trait VirtDriver: Send + Sync + std::fmt::Debug {
    /// `qemu`, `kvm` or `fake`, as reported to the scheduler.
    fn hypervisor_type(&self) -> String;

    /// Defines the domain and starts it.
    async fn spawn(&self, spec: &DomainSpec) -> Result<(), DriverError>;

    /// The domain's state, or `None` if it does not exist.
    async fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError>;

    /// Every domain this driver knows, with its state.
    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError>;

    /// The UUID a domain was defined with (an instance's is its id), or
    /// `None` if it does not exist.
    async fn uuid(&self, name: &str) -> Result<Option<uuid::Uuid>, DriverError>;

    /// Gives a stopped domain `vcpus` and `memory_mb` from its next start
    /// on (its persistent definition; its disks stay as they are).
    async fn resize(&self, name: &str, vcpus: u32, memory_mb: u64) -> Result<(), DriverError>;

    /// Starts a stopped domain.
    async fn power_on(&self, name: &str) -> Result<(), DriverError>;

    /// Stops a running domain (hard).
    async fn power_off(&self, name: &str) -> Result<(), DriverError>;

    /// Reboots: `hard` resets, soft asks the guest (ACPI).
    async fn reboot(&self, name: &str, hard: bool) -> Result<(), DriverError>;

    /// Stops and undefines the domain; a missing domain is fine.
    async fn destroy(&self, name: &str) -> Result<(), DriverError>;
}
