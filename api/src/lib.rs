//! The api service: (to come) the EC2 Query API, and the `conductor` topic
//! through which compute hosts report instance state to the database it owns.

pub mod conductor;
pub mod config;
pub mod metadata;
pub mod service;
