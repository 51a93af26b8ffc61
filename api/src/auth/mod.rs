//! Request authentication for the EC2-compatible Query API: AWS Signature
//! Version 4 (header and presigned-query forms) and Version 2.
//!
//! Verification happens in two steps because the secret lives in the caller's
//! key store: [`claim`] says which access key a request names, the caller looks
//! its secret up, and [`verify`] checks the signature and the request time.
//! A [`replay::ReplayGuard`] then refuses a signature it has already accepted.

pub mod replay;
pub mod sigv2;
pub mod sigv4;

mod params;
mod timestamp;

use std::time::{Duration, SystemTime};

/// The parts of an HTTP request a signature covers, as received.
pub struct SignedRequest<'a> {
    /// HTTP method, in any case ("GET", "post").
    pub method: &'a str,
    /// Raw path as received, e.g. "/" or "/services/Cloud/".
    pub path: &'a str,
    /// Raw query string without '?', may be "".
    pub query: &'a str,
    /// Header names in any case, values as received; a name may repeat.
    pub headers: &'a [(String, String)],
    /// Raw body (form-encoded for POST).
    pub body: &'a [u8],
}

/// Which credentials a request claims, found before the secret is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The access key id the request names.
    pub access_key: String,
    /// The signature scheme the request uses.
    pub version: SignatureVersion,
}

/// The signature schemes this module accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// AWS Signature Version 2 (query or form parameters).
    V2,
    /// AWS Signature Version 4 (Authorization header or presigned query).
    V4,
}

/// Why a request failed authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature at all (maps to EC2 code "AuthFailure" / MissingAuthenticationToken).
    #[error(
        "Request is not signed: it carries no Authorization header, no X-Amz-Signature and no Signature parameter."
    )]
    Unsigned,
    /// Signature parts missing or malformed, with what (EC2 "IncompleteSignature").
    #[error("Incomplete signature: {0}")]
    Incomplete(String),
    /// An algorithm or SignatureMethod we do not support, by name.
    #[error("Unsupported signing algorithm or method: {0}")]
    Unsupported(String),
    /// The request time is outside the allowed window, saying the time and the window.
    #[error("Request has expired: {0}")]
    Expired(String),
    /// The signature does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    /// No credentials with the access key the request names.
    #[error("AWS was not able to validate the provided access credentials")]
    UnknownKey,
    /// A signature already accepted, sent again (a replay), saying when it was first seen.
    #[error(
        "This signed request was already accepted {0}; a signed request is accepted once. Sign the request again to repeat it."
    )]
    Replayed(String),
}

impl AuthError {
    /// The EC2 error code this failure is reported under.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unsigned => "AuthFailure",
            AuthError::Incomplete(_) => "IncompleteSignature",
            AuthError::Unsupported(_) => "InvalidParameterValue",
            AuthError::Expired(_) => "RequestExpired",
            AuthError::Mismatch => "SignatureDoesNotMatch",
            AuthError::UnknownKey | AuthError::Replayed(_) => "AuthFailure",
        }
    }
}

/// Finds which access key (and signature version) signed the request.
pub fn claim(req: &SignedRequest) -> Result<Claim, AuthError> {
    let (access_key, version) = match scheme(req)? {
        Scheme::V4 => (sigv4::claim(req)?, SignatureVersion::V4),
        Scheme::V2 => (sigv2::claim(req)?, SignatureVersion::V2),
    };
    Ok(Claim {
        access_key,
        version,
    })
}

/// Checks the signature with the key's secret, and that the request time
/// (X-Amz-Date / Date header / Timestamp param; V2 `Expires` too) is within `window` of `now`.
pub fn verify(
    req: &SignedRequest,
    secret: &str,
    now: SystemTime,
    window: Duration,
) -> Result<(), AuthError> {
    verify_for(req, secret, now, window, sigv4::SERVICE)
}

/// As [`verify`], for a request to `service` (`sigv4::SERVICE` or
/// `sigv4::STS_SERVICE`): a SigV4 scope naming any other service is refused.
pub fn verify_for(
    req: &SignedRequest,
    secret: &str,
    now: SystemTime,
    window: Duration,
    service: &str,
) -> Result<(), AuthError> {
    match scheme(req)? {
        Scheme::V4 => sigv4::verify_for_service(req, secret, now, window, service),
        Scheme::V2 => sigv2::verify(req, secret, now, window),
    }
}

/// The service a SigV4 request's Credential scope names; `None` for a
/// request signed otherwise or not at all, or whose scope cannot be read
/// (verifying it then says why).
pub fn scoped_service(req: &SignedRequest) -> Option<String> {
    match scheme(req) {
        Ok(Scheme::V4) => sigv4::scoped_service(req).ok(),
        _ => None,
    }
}

/// The signature bytes a request carries, decoded as its scheme writes them.
pub(crate) fn provided_signature(req: &SignedRequest) -> Result<Vec<u8>, AuthError> {
    match scheme(req)? {
        Scheme::V4 => sigv4::provided_signature(req),
        Scheme::V2 => sigv2::provided_signature(req),
    }
}

enum Scheme {
    V4,
    V2,
}

/// Picks the one scheme a request uses; a request offering two is refused
/// rather than checked by one while the handler trusts the other.
fn scheme(req: &SignedRequest) -> Result<Scheme, AuthError> {
    let header = sigv4::has_authorization_header(req);
    let query = sigv4::has_query_signature(req);
    let v2 = sigv2::has_signature_params(req);
    match (header, query, v2) {
        (false, false, false) => Err(AuthError::Unsigned),
        (true, false, false) | (false, true, false) => Ok(Scheme::V4),
        (false, false, true) => Ok(Scheme::V2),
        _ => Err(AuthError::Incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .to_string(),
        )),
    }
}
