//! The chance driver: a random up host, as Nova's first scheduler did.
//! It ignores the requested zone; `zone` and `filter` honour it.

use super::{Driver, Random};
use crate::filters::{COMPUTE, RETRY};

/// Any enabled host not yet tried, at random.
pub fn driver() -> Driver {
    Driver {
        filters: vec![Box::new(RETRY), Box::new(COMPUTE)],
        chooser: Box::new(Random),
    }
}
