//! The api service: the EC2 Query API (with STS's GetCallerIdentity on the
//! same endpoint) and the cloud controller behind it,
//! the database it owns, the `conductor` topic through which compute hosts
//! report instance state, and the metadata service.

pub mod admin;
pub mod app;
pub mod auth;
pub mod conductor;
pub mod config;
pub mod db;
pub mod ec2;
pub mod keys;
pub mod metadata;
pub mod netns;
pub mod serve;
pub mod service;
pub mod start;
pub mod sts;
