//! The zone driver: a random up host in the requested availability zone.

use super::{Driver, Random};
use crate::filters::{AVAILABILITY_ZONE, COMPUTE, RETRY};

/// Any enabled host of the zone not yet tried, at random.
pub fn driver() -> Driver {
    Driver {
        filters: vec![
            Box::new(RETRY),
            Box::new(COMPUTE),
            Box::new(AVAILABILITY_ZONE),
        ],
        chooser: Box::new(Random),
    }
}
