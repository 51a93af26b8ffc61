//! The host programs the compute worker runs for itself (its networking's
//! are in `stratus-host`): `qemu-img`, and for a guest's disk `mount`,
//! `losetup`, `qemu-storage-daemon`, `qemu-nbd` and `genisoimage`. Each goes
//! through [`stratus_host::HostCommands`] by argument vector, so a test can
//! run the same paths against the recording fake. Also the private libvirtd
//! that tests, benchmarks and the all-in-one start in a network namespace.

pub mod libvirtd;
pub mod proc;
pub mod qemu_img;

use std::time::Duration;

use stratus_host::RealHost;

/// How long any one command may take before it is killed (and the step
/// that ran it fails, and cleans up).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The real host as the worker's own commands need it: in the host's
/// namespaces (a mount made under `ip netns exec` would be in a mount
/// namespace of its own, invisible to the worker), each command within
/// [`COMMAND_TIMEOUT`].
pub fn local() -> RealHost {
    RealHost::new().with_timeout(COMMAND_TIMEOUT)
}
