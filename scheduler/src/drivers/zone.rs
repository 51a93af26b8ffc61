//! The zone driver: a random up host in the requested availability zone.

use super::{Driver, Random};
use crate::filters::{AvailabilityZoneFilter, ComputeFilter, RetryFilter};

/// Any enabled host of the zone not yet tried, at random.
pub fn driver() -> Driver {
    Driver {
        filters: vec![
            Box::new(RetryFilter),
            Box::new(ComputeFilter),
            Box::new(AvailabilityZoneFilter),
        ],
        chooser: Box::new(Random),
    }
}
