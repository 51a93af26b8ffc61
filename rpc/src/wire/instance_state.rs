//! An instance's lifecycle state as the cloud records it, with EC2's codes
//! and names, and the one place that says which moves between states are
//! allowed.

use serde::{Deserialize, Serialize};

/// An instance's lifecycle state, with EC2's codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Accepted, not yet running (code 0); where every instance starts.
    #[default]
    Pending,
    /// Running (16).
    Running,
    /// Being terminated (32).
    ShuttingDown,
    /// Gone (48).
    Terminated,
    /// Being stopped (64).
    Stopping,
    /// Stopped (80).
    Stopped,
    /// The build failed; the reason says why. EC2 has no such state: the
    /// API shows it as terminated (48) with the reason, as AWS shows a
    /// launch that failed.
    Error,
}

/// What can happen to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceEvent {
    /// The user asks to terminate it; `placed` when a host holds it (that
    /// host finishes the job), otherwise it ends at once.
    Terminate {
        /// Whether a compute host holds it.
        placed: bool,
    },
    /// The user asks to stop it.
    Stop,
    /// The user asks to start it.
    Start,
    /// The user asks to reboot it.
    Reboot,
    /// Its host (or the scheduler) reports this state.
    Reported(InstanceState),
    /// Its build had no news for too long, or could not be scheduled.
    BuildFailed,
}

/// The event does not apply to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an instance that is {state} cannot take {event:?}")]
pub struct InvalidTransition {
    /// The instance's state.
    pub state: InstanceState,
    /// What happened.
    pub event: InstanceEvent,
}

/// A state name that is not one of [`InstanceState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown instance state {0:?}")]
pub struct UnknownState(pub String);

impl InstanceState {
    /// Every state, in code order.
    pub const ALL: [InstanceState; 7] = [
        Self::Pending,
        Self::Running,
        Self::ShuttingDown,
        Self::Terminated,
        Self::Stopping,
        Self::Stopped,
        Self::Error,
    ];

    /// The EC2 state code.
    pub fn code(self) -> u16 {
        match self {
            Self::Pending => 0,
            Self::Running => 16,
            Self::ShuttingDown => 32,
            Self::Terminated | Self::Error => 48,
            Self::Stopping => 64,
            Self::Stopped => 80,
        }
    }

    /// The state's own name (the wire's and the database's).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }

    /// The name EC2 clients see: a failed build shows as terminated.
    pub fn ec2_name(self) -> &'static str {
        match self {
            Self::Error => Self::Terminated.name(),
            state => state.name(),
        }
    }

    /// Whether the instance is gone and holds no resources.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Terminated | Self::Error)
    }

    /// Whether a host holds a live copy of it (building, running or stopped).
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Running | Self::Stopping | Self::Stopped
        )
    }

    /// The state after `event`, or why it cannot happen. Asking for what
    /// already holds (stopping a stopped instance) leaves it as it is.
    pub fn transition(self, event: InstanceEvent) -> Result<InstanceState, InvalidTransition> {
        use InstanceEvent as E;
        use InstanceState as S;
        match (self, event) {
            (S::Terminated | S::Error, E::Terminate { .. }) => Ok(S::Terminated),
            (_, E::Terminate { placed: true }) => Ok(S::ShuttingDown),
            (_, E::Terminate { placed: false }) => Ok(S::Terminated),
            (S::Running, E::Stop) => Ok(S::Stopping),
            (S::Stopping | S::Stopped, E::Stop) => Ok(self),
            (S::Stopped, E::Start) => Ok(S::Pending),
            (S::Pending | S::Running, E::Start) => Ok(self),
            (S::Running, E::Reboot) => Ok(S::Running),
            // Terminated before its host had it, or being terminated: a live
            // report (stale, or from a build the terminate has not reached
            // yet) does not revive it.
            (S::Terminated | S::ShuttingDown, E::Reported(reported)) if reported.is_alive() => {
                Err(InvalidTransition { state: self, event })
            }
            (_, E::Reported(reported)) => Ok(reported),
            (S::Pending, E::BuildFailed) => Ok(S::Error),
            (state, event) => Err(InvalidTransition { state, event }),
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for InstanceState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.name() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceEvent::*;
    use super::InstanceState::*;
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_wire() {
        for state in InstanceState::ALL {
            assert_eq!(state.to_string().parse::<InstanceState>(), Ok(state));
            let wire = serde_json::to_string(&state).expect("serialize");
            assert_eq!(wire, format!("\"{state}\""));
        }
        assert!("Running".parse::<InstanceState>().is_err());
        assert_eq!((Error.code(), Error.ec2_name()), (48, "terminated"));
    }

    #[test]
    fn user_requests_move_only_from_sensible_states() {
        assert_eq!(Running.transition(Stop), Ok(Stopping));
        assert_eq!(Stopped.transition(Stop), Ok(Stopped));
        assert!(Pending.transition(Stop).is_err());
        assert_eq!(Stopped.transition(Start), Ok(Pending));
        assert_eq!(Running.transition(Start), Ok(Running));
        assert!(ShuttingDown.transition(Start).is_err());
        assert!(
            ShuttingDown.transition(Reported(Running)).is_err(),
            "a stale live report does not undo a terminate"
        );
        assert_eq!(
            ShuttingDown.transition(Reported(Terminated)),
            Ok(Terminated)
        );
        assert_eq!(Running.transition(Reboot), Ok(Running));
        assert!(Stopped.transition(Reboot).is_err());
    }

    #[test]
    fn terminate_ends_at_once_unless_a_host_holds_it() {
        assert_eq!(
            Running.transition(Terminate { placed: true }),
            Ok(ShuttingDown)
        );
        assert_eq!(
            Pending.transition(Terminate { placed: false }),
            Ok(Terminated)
        );
        assert_eq!(Error.transition(Terminate { placed: true }), Ok(Terminated));
    }

    #[test]
    fn reports_win_except_reviving_a_terminated_instance() {
        assert_eq!(Pending.transition(Reported(Running)), Ok(Running));
        assert_eq!(Terminated.transition(Reported(Terminated)), Ok(Terminated));
        assert!(Terminated.transition(Reported(Running)).is_err());
        assert_eq!(Pending.transition(BuildFailed), Ok(Error));
        assert!(Running.transition(BuildFailed).is_err());
    }
}
