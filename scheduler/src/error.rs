//! Why an instance could not be placed; the text becomes its state reason.

use stratus_rpc::wire::ids::{HostName, InstanceId};

/// What a filter did to the candidate hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterStep {
    /// The filter's name.
    pub filter: &'static str,
    /// Hosts before it ran.
    pub before: usize,
    /// Hosts it let through.
    pub after: usize,
}

impl std::fmt::Display for FilterStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.filter, self.before, self.after)
    }
}

/// No host can take the instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoValidHost {
    /// No compute host reported within `service_down_time`.
    #[error("No valid host was found. No compute host is up (none reported in the last {0} s).")]
    NoneUp(u64),
    /// The filters removed every host.
    #[error("No valid host was found. Filters removed every host: {}.", join(.0))]
    Filtered(Vec<FilterStep>),
    /// The instance was tried on `max_attempts` hosts already.
    #[error(
        "No valid host was found. Exceeded max scheduling attempts {attempts} for instance {}; last failure: {last}",
        .instance.ec2_id()
    )]
    Attempts {
        /// How many hosts were tried.
        attempts: usize,
        /// The instance.
        instance: InstanceId,
        /// Why the last host could not build it.
        last: String,
    },
    /// The forced host is not among the hosts up.
    #[error("No valid host was found. The forced host {0} is not up.")]
    ForcedHostDown(HostName),
    /// `zone:host` named no valid host.
    #[error("No valid host was found. {0:?} is not a host name.")]
    BadForcedHost(String),
    /// A non-administrator asked for a host.
    #[error("Forcing a host (availability zone \"zone:host\") is for administrators.")]
    Forbidden,
}

fn join(steps: &[FilterStep]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
