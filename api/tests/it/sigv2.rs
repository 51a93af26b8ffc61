//! SigV2 signing written out independently of the crate (as boto 2 and
//! euca2ools sign a form POST), for the tests that speak it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// RFC 3986 percent-encoding: everything but the unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The form body of `params` signed with `secret` for `method host path`.
pub fn signed_form(
    secret: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Vec<u8> {
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let query: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let query = query.join("&");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{method}\n{host}\n{path}\n{query}").as_bytes());
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    format!("{query}&Signature={}", enc(&sig)).into_bytes()
}
