//! AWS Signature Version 2, as botocore's `SigV2Auth` and the older EC2 tools
//! (boto 2, euca2ools) send it: auth parameters beside the API parameters.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::auth::params::{self, Pair, shown};
use crate::auth::timestamp;
use crate::auth::{AuthError, SignedRequest};

/// The signed parameters: the query string, plus the form body for POST.
///
/// botocore and boto 2 put everything in one place or the other; taking both
/// for POST means no parameter the handler might read escapes the signature.
fn request_params(req: &SignedRequest) -> Vec<Pair> {
    let mut pairs = params::parse(req.query.as_bytes(), true);
    if req.method.eq_ignore_ascii_case("POST") {
        pairs.extend(params::parse(req.body, true));
    }
    pairs
}

/// Whether the request carries SigV2 auth parameters.
pub(crate) fn has_signature_params(req: &SignedRequest) -> bool {
    request_params(req)
        .iter()
        .any(|(k, _)| k.as_slice() == b"Signature" || k.as_slice() == b"AWSAccessKeyId")
}

/// The access key named by the AWSAccessKeyId parameter.
pub fn claim(req: &SignedRequest) -> Result<String, AuthError> {
    let pairs = request_params(req);
    Ok(params::required(&pairs, "AWSAccessKeyId")?.to_string())
}

/// Verifies a SigV2 request (HmacSHA256 or HmacSHA1) and its Timestamp or Expires.
pub fn verify(
    req: &SignedRequest,
    secret: &str,
    now: SystemTime,
    window: Duration,
) -> Result<(), AuthError> {
    let pairs = request_params(req);
    params::required(&pairs, "AWSAccessKeyId")?;
    let version = params::required(&pairs, "SignatureVersion")?;
    if version != "2" {
        return Err(AuthError::Unsupported(format!(
            "SignatureVersion '{}'",
            shown(version)
        )));
    }
    let method = params::required(&pairs, "SignatureMethod")?;
    if method != "HmacSHA256" && method != "HmacSHA1" {
        return Err(AuthError::Unsupported(format!(
            "SignatureMethod '{}'",
            shown(method)
        )));
    }
    check_time(&pairs, now, window)?;
    let provided = decode_signature(&pairs)?;

    let host = params::single_header(req.headers, "host")?
        .ok_or_else(|| AuthError::Incomplete("a Host header is required".to_string()))?;
    // botocore signs the URL's netloc as written; the spec says lowercase.
    let lower = host.to_ascii_lowercase();
    let hosts = if lower == host {
        vec![lower]
    } else {
        vec![lower, host.to_string()]
    };
    let path = if req.path.is_empty() { "/" } else { req.path };
    let query = canonical_params(&pairs);
    for host in &hosts {
        let string_to_sign = format!(
            "{}\n{host}\n{path}\n{query}",
            req.method.to_ascii_uppercase()
        );
        if matches(method, secret, &string_to_sign, &provided)? {
            return Ok(());
        }
    }
    Err(AuthError::Mismatch)
}

/// The signature bytes the request carries, as [`verify`] compares them.
pub(crate) fn provided_signature(req: &SignedRequest) -> Result<Vec<u8>, AuthError> {
    decode_signature(&request_params(req))
}

fn decode_signature(pairs: &[Pair]) -> Result<Vec<u8>, AuthError> {
    // base64 has no spaces: a space here is a '+' the client left unescaped.
    let signature = params::required(pairs, "Signature")?.replace(' ', "+");
    STANDARD
        .decode(signature.trim())
        .map_err(|_| AuthError::Incomplete("Signature is not valid base64".to_string()))
}

fn check_time(pairs: &[Pair], now: SystemTime, window: Duration) -> Result<(), AuthError> {
    let stamp = params::single(pairs, "Timestamp")?;
    let expires = params::single(pairs, "Expires")?;
    if stamp.is_none() && expires.is_none() {
        return Err(AuthError::Incomplete(
            "one of Timestamp or Expires is required".to_string(),
        ));
    }
    let parse = |name: &str, raw: &str| {
        timestamp::parse_iso8601(raw).ok_or_else(|| {
            AuthError::Incomplete(format!("{name} '{}' is not an ISO 8601 time", shown(raw)))
        })
    };
    if let Some(raw) = stamp {
        timestamp::check_window("Timestamp", parse("Timestamp", raw)?, now, window)?;
    }
    if let Some(raw) = expires {
        let expires = parse("Expires", raw)?;
        if expires <= now {
            return Err(AuthError::Expired(format!(
                "Expires {} is not after the server time {}",
                timestamp::format_iso(expires),
                timestamp::format_iso(now)
            )));
        }
        timestamp::check_window("Expires", expires, now, window)?;
    }
    Ok(())
}

/// Parameters except Signature, sorted by name (then value) and RFC 3986
/// encoded, as `SigV2Auth.calc_signature` joins them.
fn canonical_params(pairs: &[Pair]) -> String {
    let mut kept: Vec<&Pair> = pairs
        .iter()
        .filter(|(k, _)| k.as_slice() != b"Signature")
        .collect();
    kept.sort();
    let encoded: Vec<String> = kept
        .into_iter()
        .map(|(k, v)| format!("{}={}", params::encode(k), params::encode(v)))
        .collect();
    encoded.join("&")
}

fn matches(method: &str, secret: &str, data: &str, provided: &[u8]) -> Result<bool, AuthError> {
    // HMAC accepts keys of any length, so new_from_slice never fails in practice;
    // verify_slice compares in constant time.
    let ok = if method == "HmacSHA1" {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(secret.as_bytes()).map_err(|_| AuthError::Mismatch)?;
        mac.update(data.as_bytes());
        mac.verify_slice(provided).is_ok()
    } else {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| AuthError::Mismatch)?;
        mac.update(data.as_bytes());
        mac.verify_slice(provided).is_ok()
    };
    Ok(ok)
}
