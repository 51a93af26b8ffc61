//! The power state of a domain, and the moves between states that a driver
//! may make. The fake driver and the libvirt driver share it.

/// A domain's power state, as a driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// Defined, not running.
    Shutoff,
    /// Running.
    Running,
    /// Paused by the hypervisor.
    Paused,
    /// Crashed.
    Crashed,
    /// The hypervisor does not know (transient: never acted on).
    NoState,
}

/// What a driver is asked to do to a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerEvent {
    /// Start it.
    Start,
    /// Stop it (hard).
    Stop,
    /// Restart it.
    Reboot,
}

/// The event does not apply to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event:?} a domain that is {state:?}")]
pub struct InvalidTransition {
    /// The domain's state.
    pub state: PowerState,
    /// What was asked.
    pub event: PowerEvent,
}

impl PowerState {
    /// The state after `event`, or why it cannot happen.
    pub fn transition(self, event: PowerEvent) -> Result<PowerState, InvalidTransition> {
        use PowerEvent::*;
        use PowerState::*;
        match (self, event) {
            (Shutoff | Crashed, Start) => Ok(Running),
            (Running | Paused | Crashed, Stop) => Ok(Shutoff),
            (Running, Reboot) => Ok(Running),
            (state, event) => Err(InvalidTransition { state, event }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PowerEvent::*;
    use super::PowerState::*;

    #[test]
    fn only_sensible_moves_are_allowed() {
        assert_eq!(Shutoff.transition(Start), Ok(Running));
        assert_eq!(Running.transition(Stop), Ok(Shutoff));
        assert_eq!(Running.transition(Reboot), Ok(Running));
        assert!(Running.transition(Start).is_err());
        assert!(Shutoff.transition(Stop).is_err());
        assert!(Shutoff.transition(Reboot).is_err());
        assert!(
            NoState.transition(Stop).is_err(),
            "never act on an unknown state"
        );
    }
}
