//! The SigV4 canonical request, built from the request as received the way
//! botocore's `SigV4Auth.canonical_request` builds it from the request it sends.

use sha2::{Digest, Sha256};

use crate::auth::params::{self, shown};
use crate::auth::{AuthError, SignedRequest};

pub(super) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The canonical requests a genuine signer could have produced; usually one.
///
/// Two ambiguities are resolved by trying both readings: a literal '+' in the
/// query (botocore's GET params mean a space, the AWS test suite means a plus),
/// and a bodyless presigned URL (botocore hashes the empty body, S3-style
/// presigners write UNSIGNED-PAYLOAD). Neither widens what an attacker can
/// change: both readings cover the same bytes.
pub(super) fn requests(
    req: &SignedRequest,
    signed_headers: &str,
    presigned: bool,
) -> Result<Vec<String>, AuthError> {
    let mut queries = vec![canonical_query(req.query, presigned, true)];
    if req.query.contains('+') {
        queries.push(canonical_query(req.query, presigned, false));
    }
    let head = format!(
        "{}\n{}\n",
        req.method.to_ascii_uppercase(),
        params::encode_path(&remove_dot_segments(req.path))
    );
    let tail = format!(
        "{}\n{}\n",
        canonical_headers(req.headers, signed_headers)?,
        signed_headers
    );
    let payloads = payload_hashes(req, presigned)?;
    let mut out = Vec::with_capacity(queries.len() * payloads.len());
    for query in &queries {
        for payload in &payloads {
            out.push(format!("{head}{query}\n{tail}{payload}"));
        }
    }
    Ok(out)
}

/// RFC 3986 dot-segment removal as botocore does it, which also drops empty
/// segments ("//" collapses) and maps "" to "/".
pub(super) fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !kept.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", kept.join("/"))
}

fn canonical_query(query: &str, presigned: bool, plus_as_space: bool) -> String {
    let mut pairs: Vec<(String, String)> = params::parse(query.as_bytes(), plus_as_space)
        .into_iter()
        .filter(|(k, _)| !(presigned && k.as_slice() == b"X-Amz-Signature"))
        .map(|(k, v)| (params::encode(&k), params::encode(&v)))
        .collect();
    pairs.sort();
    let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    joined.join("&")
}

/// One `name:value` line per signed header, repeated headers joined by ','.
fn canonical_headers(headers: &[(String, String)], signed: &str) -> Result<String, AuthError> {
    let mut out = String::new();
    for name in signed.split(';') {
        let values: Vec<String> = params::header_values(headers, name).map(trim_all).collect();
        if values.is_empty() {
            return Err(AuthError::Incomplete(format!(
                "signed header '{}' is not present in the request",
                shown(name)
            )));
        }
        out.push_str(&name.to_ascii_lowercase());
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// Python's `' '.join(value.split())`, which botocore applies to header
/// values: its whitespace set includes U+001C..U+001F, Rust's does not.
fn trim_all(value: &str) -> String {
    let words: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ")
}

fn payload_hashes(req: &SignedRequest, presigned: bool) -> Result<Vec<String>, AuthError> {
    let actual = hex::encode(Sha256::digest(req.body));
    match params::single_header(req.headers, "x-amz-content-sha256")? {
        // botocore signs the header's value verbatim when it is present.
        Some(UNSIGNED_PAYLOAD) if req.body.is_empty() => Ok(vec![UNSIGNED_PAYLOAD.to_string()]),
        // An unsigned body would let anyone holding the headers swap the
        // Query API parameters it carries.
        Some(UNSIGNED_PAYLOAD) => Err(AuthError::Unsupported(
            "X-Amz-Content-Sha256 UNSIGNED-PAYLOAD with a request body".to_string(),
        )),
        Some(declared) if declared.starts_with("STREAMING-") => Err(AuthError::Unsupported(
            format!("X-Amz-Content-Sha256 '{}'", shown(declared)),
        )),
        // The declared hash is what is signed, so it must be the body's.
        Some(declared) if declared.eq_ignore_ascii_case(&actual) => Ok(vec![declared.to_string()]),
        Some(_) => Err(AuthError::Mismatch),
        None if presigned && req.body.is_empty() => Ok(vec![actual, UNSIGNED_PAYLOAD.to_string()]),
        None => Ok(vec![actual]),
    }
}
