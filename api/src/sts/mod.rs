//! AWS STS on the EC2 endpoint: `GetCallerIdentity`, so tools that ask STS
//! for the account before anything else (Ansible's amazon.aws, Terraform's
//! AWS provider) work unchanged against the same URL and keys.
//!
//! `ec2/server.rs` reads the request, checks its signature as for EC2 (but
//! scoped to `sts`) and hands it here when [`route`] or [`asks_sts`] says
//! it is STS's. This room says who the caller is ([`identity`]) and writes
//! STS's answers in both protocols clients speak ([`reply`]).

pub mod error;
pub mod identity;
pub mod reply;

use error::StsError;
use identity::Identity;

use crate::ec2::Caller;
use crate::ec2::params::shown;

/// The STS API version this endpoint answers.
pub const VERSION: &str = "2011-06-15";

/// The XML namespace of STS's Query responses.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// How a JSON-protocol request's `X-Amz-Target` starts.
pub const TARGET_PREFIX: &str = "AWSSecurityTokenServiceV20110615.";

/// The actions [`answer`] knows.
pub const ACTIONS: &[&str] = &["GetCallerIdentity"];

/// The two ways clients speak STS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Form parameters in, XML out (botocore's `query` protocol).
    Query,
    /// `X-Amz-Target` and a JSON body in, JSON out (`json` 1.0, which newer
    /// SDKs use for STS).
    Json,
}

/// Which STS protocol a request speaks, as far as its headers tell before
/// the body is read: an `X-Amz-Target` naming STS, or a SigV4 scope for
/// `sts`. `None` when neither says STS (it may still ask for an STS action:
/// see [`asks_sts`]).
pub fn route(headers: &[(String, String)], scoped_service: Option<&str>) -> Option<Protocol> {
    if target(headers).is_some() {
        Some(Protocol::Json)
    } else if scoped_service == Some(crate::auth::sigv4::STS_SERVICE) {
        Some(Protocol::Query)
    } else {
        None
    }
}

/// Whether Query parameters ask STS (its action at its version), as a
/// request signed without a SigV4 scope can only say.
pub fn asks_sts(action: &str, version: Option<&str>) -> bool {
    ACTIONS.contains(&action) && version == Some(VERSION)
}

/// The operation a JSON-protocol request names in `X-Amz-Target`.
pub fn target(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
        .and_then(|(_, value)| value.trim().strip_prefix(TARGET_PREFIX))
}

/// Checks a JSON-protocol body: GetCallerIdentity takes no input, so an
/// empty body or a JSON object (botocore sends `{}`) and nothing else.
pub fn check_json_body(body: &[u8]) -> Result<(), StsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(StsError::client(
            "SerializationException",
            "The request body must be a JSON object.",
        )),
    }
}

/// Runs one STS action for an authenticated caller.
pub fn answer(protocol: Protocol, action: &str, caller: &Caller) -> Result<Identity, StsError> {
    match action {
        "GetCallerIdentity" => Ok(Identity::of(&caller.project_id, &caller.user_id)),
        "" if protocol == Protocol::Query => {
            Err(StsError::client("MissingAction", "Missing Action"))
        }
        other if protocol == Protocol::Json => Err(StsError::client(
            "UnknownOperationException",
            format!("The operation {} is not known.", shown(other)),
        )),
        other => Err(StsError::client(
            "InvalidAction",
            format!(
                "Could not find operation {} for version {VERSION}",
                shown(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_request_is_stss_by_its_target_or_its_scope() {
        let json = headers(&[(
            "X-Amz-Target",
            "AWSSecurityTokenServiceV20110615.GetCallerIdentity",
        )]);
        assert_eq!(route(&json, Some("sts")), Some(Protocol::Json));
        assert_eq!(target(&json), Some("GetCallerIdentity"));
        assert_eq!(route(&[], Some("sts")), Some(Protocol::Query));
        assert_eq!(route(&[], Some("ec2")), None);
        assert_eq!(route(&[], None), None);
        let other = headers(&[("x-amz-target", "DynamoDB_20120810.ListTables")]);
        assert_eq!(route(&other, Some("ec2")), None);
        assert!(asks_sts("GetCallerIdentity", Some("2011-06-15")));
        assert!(!asks_sts("GetCallerIdentity", Some("2016-11-15")));
        assert!(!asks_sts("DescribeInstances", Some("2011-06-15")));
    }

    #[test]
    fn unknown_actions_are_refused_in_each_protocols_words() {
        let caller = Caller {
            project_id: "acme".into(),
            user_id: "alice".into(),
            is_admin: false,
        };
        let me = answer(Protocol::Query, "GetCallerIdentity", &caller).expect("identity");
        assert_eq!(me, Identity::of("acme", "alice"));
        let code = |p, a| answer(p, a, &caller).map_err(|e| e.code);
        assert_eq!(code(Protocol::Query, "AssumeRole"), Err("InvalidAction"));
        assert_eq!(code(Protocol::Query, ""), Err("MissingAction"));
        assert_eq!(
            code(Protocol::Json, "AssumeRole"),
            Err("UnknownOperationException")
        );
    }

    #[test]
    fn a_json_body_must_be_an_object() {
        assert!(check_json_body(b"").is_ok());
        assert!(check_json_body(b"{}").is_ok());
        assert!(check_json_body(b" {\"x\": 1} ").is_ok());
        for bad in [&b"[]"[..], b"{", b"Action=GetCallerIdentity"] {
            assert_eq!(
                check_json_body(bad).map_err(|e| e.code),
                Err("SerializationException")
            );
        }
    }
}
