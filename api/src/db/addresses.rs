//! Public (Elastic) addresses in the database.
