//! Public addresses on real guests.
