//! The signature verifiers against botocore-signed requests and hostile input.

mod edge_cases;
mod vectors;
