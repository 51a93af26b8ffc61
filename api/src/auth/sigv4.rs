//! AWS Signature Version 4, in the two forms botocore sends: the
//! `Authorization` header and the presigned query string.
//!
//! The canonical request follows botocore's `SigV4Auth` (the client we must
//! accept) where it and the AWS documentation differ in wording: the path is
//! dot-segment normalized with empty segments dropped, then percent-encoded
//! once more on top of its on-the-wire encoding.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::params::{self, Pair, shown};
use crate::auth::timestamp;
use crate::auth::{AuthError, SignedRequest};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service EC2 requests are scoped to.
pub const SERVICE: &str = "ec2";
/// The service STS requests are scoped to (served on the same endpoint).
pub const STS_SERVICE: &str = "sts";
/// AWS refuses presigned URLs valid for longer than seven days.
const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// What a SigV4 request says about its own signature.
struct Parts {
    access_key: String,
    scope_date: String,
    region: String,
    service: String,
    /// The SignedHeaders list exactly as sent, since it is signed as sent.
    signed_headers: String,
    signature: String,
    /// The request time as it goes into the string to sign.
    amz_date: String,
    time: SystemTime,
    /// X-Amz-Expires, for the presigned form.
    expires: Option<u64>,
    presigned: bool,
}

/// Whether the request has an Authorization header at all (of any scheme).
pub(crate) fn has_authorization_header(req: &SignedRequest) -> bool {
    params::header_values(req.headers, "authorization")
        .next()
        .is_some()
}

/// Whether the query string carries presigned-URL auth parameters.
pub(crate) fn has_query_signature(req: &SignedRequest) -> bool {
    query_pairs(req).iter().any(|(k, _)| {
        matches!(
            k.as_slice(),
            b"X-Amz-Algorithm" | b"X-Amz-Credential" | b"X-Amz-Signature"
        )
    })
}

/// The access key named in the request's SigV4 Credential.
pub fn claim(req: &SignedRequest) -> Result<String, AuthError> {
    Ok(parse(req)?.access_key)
}

/// The service the request's SigV4 Credential scope names (`ec2`, `sts`),
/// read before verifying so the endpoint knows which API is asked; the
/// signature over that very scope is checked afterwards.
pub fn scoped_service(req: &SignedRequest) -> Result<String, AuthError> {
    Ok(parse(req)?.service)
}

/// Verifies a SigV4 request scoped to `service` (`SERVICE` or
/// `STS_SERVICE`; any region).
pub(super) fn verify_for_service(
    req: &SignedRequest,
    secret: &str,
    now: SystemTime,
    window: Duration,
    service: &str,
) -> Result<(), AuthError> {
    let parts = parse(req)?;
    if parts.service != service {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to correct service: '{service}', not '{}'",
            shown(&parts.service)
        )));
    }
    timestamp::check_window("Request timestamp", parts.time, now, window)?;
    if let Some(expires) = parts.expires {
        let deadline = parts.time.checked_add(Duration::from_secs(expires));
        if deadline.is_none_or(|deadline| now > deadline) {
            return Err(AuthError::Expired(format!(
                "signed at {} and valid for {expires}s (X-Amz-Expires), but the server time is {}",
                timestamp::format_iso(parts.time),
                timestamp::format_iso(now)
            )));
        }
    }
    let provided = decode_signature(&parts.signature)?;
    let key = signing_key(secret, &parts)?;
    for canonical in canonical::requests(req, &parts.signed_headers, parts.presigned)? {
        let mut mac = hmac(&key)?;
        mac.update(string_to_sign(&parts, &canonical).as_bytes());
        // verify_slice compares in constant time.
        if mac.verify_slice(&provided).is_ok() {
            return Ok(());
        }
    }
    Err(AuthError::Mismatch)
}

/// The signature a header-form request should carry, computed from its
/// Credential and SignedHeaders (its Signature may be anything). Clients of
/// our own (the API benchmark) sign with the very code that verifies.
pub fn expected_signature(req: &SignedRequest, secret: &str) -> Result<String, AuthError> {
    let parts = parse(req)?;
    let key = signing_key(secret, &parts)?;
    let canonical = canonical::requests(req, &parts.signed_headers, parts.presigned)?
        .into_iter()
        .next()
        .ok_or_else(|| AuthError::Incomplete("no canonical request".into()))?;
    let mut mac = hmac(&key)?;
    mac.update(string_to_sign(&parts, &canonical).as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The signature bytes the request carries, as [`verify`] compares them.
pub(crate) fn provided_signature(req: &SignedRequest) -> Result<Vec<u8>, AuthError> {
    decode_signature(&parse(req)?.signature)
}

fn decode_signature(signature: &str) -> Result<Vec<u8>, AuthError> {
    hex::decode(signature)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| AuthError::Incomplete("Signature must be 64 hex digits".to_string()))
}

fn query_pairs(req: &SignedRequest) -> Vec<Pair> {
    params::parse(req.query.as_bytes(), true)
}

fn parse(req: &SignedRequest) -> Result<Parts, AuthError> {
    let mut auth = params::header_values(req.headers, "authorization");
    match (auth.next(), auth.next()) {
        (Some(_), Some(_)) => Err(AuthError::Incomplete(
            "more than one Authorization header".to_string(),
        )),
        (Some(value), None) => parse_header_form(req, value),
        (None, _) => parse_query_form(req),
    }
}

fn parse_header_form(req: &SignedRequest, value: &str) -> Result<Parts, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::Unsupported(format!(
            "Authorization scheme '{}'",
            shown(algorithm)
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (name, val) = component.split_once('=').ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Authorization component '{}' is not of the form Name=Value",
                shown(component)
            ))
        })?;
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            // Unknown components are not signed over; ignoring them is harmless.
            _ => continue,
        };
        if slot.replace(val.trim()).is_some() {
            return Err(AuthError::Incomplete(format!(
                "Authorization component {name} appears more than once"
            )));
        }
    }
    let missing = |what: &str| {
        AuthError::Incomplete(format!("Authorization header requires '{what}' parameter"))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;

    // X-Amz-Date wins over Date, as in the AWS documentation.
    let (amz_date, time) = match params::single_header(req.headers, "x-amz-date")? {
        Some(raw) => {
            let time = timestamp::parse_amz(raw.trim()).ok_or_else(|| {
                AuthError::Incomplete(format!(
                    "X-Amz-Date '{}' is not of the form YYYYMMDDTHHMMSSZ",
                    shown(raw)
                ))
            })?;
            (raw.trim().to_string(), time)
        }
        None => {
            let raw = params::single_header(req.headers, "date")?.ok_or_else(|| {
                AuthError::Incomplete(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"
                        .to_string(),
                )
            })?;
            let time = timestamp::parse_http_date(raw).ok_or_else(|| {
                AuthError::Incomplete(format!("Date header '{}' is not an HTTP date", shown(raw)))
            })?;
            // botocore signs the instant in basic form even when it sends Date.
            (timestamp::format_amz(time), time)
        }
    };
    assemble(
        credential,
        signed_headers,
        signature,
        amz_date,
        time,
        None,
        false,
    )
}

fn parse_query_form(req: &SignedRequest) -> Result<Parts, AuthError> {
    let pairs = query_pairs(req);
    let algorithm = params::required(&pairs, "X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(AuthError::Unsupported(format!(
            "X-Amz-Algorithm '{}'",
            shown(algorithm)
        )));
    }
    let credential = params::required(&pairs, "X-Amz-Credential")?;
    let signed_headers = params::required(&pairs, "X-Amz-SignedHeaders")?;
    let signature = params::required(&pairs, "X-Amz-Signature")?;
    let raw_date = params::required(&pairs, "X-Amz-Date")?;
    let time = timestamp::parse_amz(raw_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date '{}' is not of the form YYYYMMDDTHHMMSSZ",
            shown(raw_date)
        ))
    })?;
    let expires = match params::single(&pairs, "X-Amz-Expires")? {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .filter(|secs| (1..=MAX_EXPIRES).contains(secs))
                .ok_or_else(|| {
                    AuthError::Incomplete(format!(
                        "X-Amz-Expires '{}' must be a number of seconds from 1 to {MAX_EXPIRES}",
                        shown(raw)
                    ))
                })?,
        ),
    };
    assemble(
        credential,
        signed_headers,
        signature,
        raw_date.to_string(),
        time,
        expires,
        true,
    )
}

fn assemble(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: String,
    time: SystemTime,
    expires: Option<u64>,
    presigned: bool,
) -> Result<Parts, AuthError> {
    // Split from the right: the scope has a fixed shape, the key id is the rest.
    let mut scope = credential.rsplitn(5, '/');
    let (Some(terminator), Some(service), Some(region), Some(scope_date), Some(access_key)) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(AuthError::Incomplete(format!(
            "Credential '{}' is not of the form AKID/YYYYMMDD/region/service/aws4_request",
            shown(credential)
        )));
    };
    if terminator != "aws4_request" || access_key.is_empty() || region.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "Credential '{}' is not of the form AKID/YYYYMMDD/region/service/aws4_request",
            shown(credential)
        )));
    }
    if amz_date.get(..8) != Some(scope_date) {
        return Err(AuthError::Incomplete(format!(
            "Date in Credential scope '{}' does not match the request date '{}'",
            shown(scope_date),
            shown(&amz_date)
        )));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(AuthError::Incomplete(format!(
            "SignedHeaders '{}' has an empty name",
            shown(signed_headers)
        )));
    }
    // Without Host signed, a signature could be replayed against another endpoint.
    if !names.iter().any(|n| n.eq_ignore_ascii_case("host")) {
        return Err(AuthError::Incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization".to_string(),
        ));
    }
    Ok(Parts {
        access_key: access_key.to_string(),
        scope_date: scope_date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed_headers.to_string(),
        signature: signature.to_string(),
        amz_date,
        time,
        expires,
        presigned,
    })
}

fn string_to_sign(parts: &Parts, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        parts.amz_date,
        parts.scope_date,
        parts.region,
        parts.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

fn signing_key(secret: &str, parts: &Parts) -> Result<Vec<u8>, AuthError> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for step in [
        parts.scope_date.as_str(),
        parts.region.as_str(),
        parts.service.as_str(),
        "aws4_request",
    ] {
        let mut mac = hmac(&key)?;
        mac.update(step.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    Ok(key)
}

fn hmac(key: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
    // HMAC accepts keys of any length, so this never fails in practice.
    Hmac::<Sha256>::new_from_slice(key).map_err(|_| AuthError::Mismatch)
}

mod canonical;

#[cfg(test)]
mod tests;
