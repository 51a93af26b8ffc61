//! Requests signed by botocore itself (tests/gen_vectors.py → tests/vectors.json):
//! each must verify at its signing time, and fail once tampered with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stratus_api::auth::{AuthError, Claim, SignatureVersion, SignedRequest, claim, verify};

use crate::fuzz::targets::Raw;

const WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Vector {
    name: String,
    version: SignatureVersion,
    expect: String,
    now: SystemTime,
    raw: Raw,
}

impl Vector {
    fn request(&self) -> SignedRequest<'_> {
        self.raw.request()
    }
}

fn load() -> (String, String, Vec<Vector>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sigv_vectors.json"
    ))
    .expect("tests/data/sigv_vectors.json");
    let doc = serde_json::from_str::<serde_json::Value>(&text).expect("vectors JSON");
    let vectors = doc
        .at("vectors")
        .arr()
        .iter()
        .map(|v| Vector {
            name: v.at("name").str().to_string(),
            version: match v.at("version").str() {
                "V2" => SignatureVersion::V2,
                _ => SignatureVersion::V4,
            },
            expect: v.at("expect").str().to_string(),
            now: UNIX_EPOCH + Duration::from_secs(v.at("now").str().parse().expect("test input")),
            raw: Raw {
                method: v.at("method").str().to_string(),
                path: v.at("path").str().to_string(),
                query: v.at("query").str().to_string(),
                headers: v
                    .at("headers")
                    .arr()
                    .iter()
                    .map(|h| (h.arr()[0].str().to_string(), h.arr()[1].str().to_string()))
                    .collect(),
                body: hex::decode(v.at("body_hex").str()).expect("test input"),
            },
        })
        .collect();
    (
        doc.at("access_key").str().to_string(),
        doc.at("secret_key").str().to_string(),
        vectors,
    )
}

fn outcome(result: Result<(), AuthError>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{} ({e})", e.code()),
    }
}

#[test]
fn every_botocore_vector_claims_and_verifies() {
    let (access_key, secret, vectors) = load();
    assert!(vectors.len() >= 20, "only {} vectors", vectors.len());
    let mut failures = Vec::new();
    for v in &vectors {
        let req = v.request();
        let claimed = claim(&req);
        let expected = Claim {
            access_key: access_key.clone(),
            version: v.version,
        };
        if claimed != Ok(expected) {
            failures.push(format!("{}: claim gave {claimed:?}", v.name));
        }
        let got = outcome(verify(&req, &secret, v.now, WINDOW));
        if !got.starts_with(&v.expect) {
            failures.push(format!("{}: expected {}, got {got}", v.name, v.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Changes one byte of the action name wherever the request carries it.
fn tamper_action(v: &mut Vector) -> bool {
    const FROM: &[u8] = b"DescribeInstances";
    if let Some(i) = v.raw.body.windows(FROM.len()).position(|w| w == FROM) {
        v.raw.body[i + FROM.len() - 1] = b'z';
        return true;
    }
    if v.raw.query.contains("DescribeInstances") {
        v.raw.query = v
            .raw
            .query
            .replacen("DescribeInstances", "DescribeInstancez", 1);
        return true;
    }
    false
}

#[test]
fn tampered_botocore_vectors_fail_with_mismatch() {
    let (_, secret, vectors) = load();
    let mut failures = Vec::new();
    for v in vectors.into_iter().filter(|v| v.expect == "ok") {
        let mut body = v.clone();
        assert!(tamper_action(&mut body), "{}: nothing to tamper", v.name);
        let got = verify(&body.request(), &secret, v.now, WINDOW);
        if got != Err(AuthError::Mismatch) {
            failures.push(format!("{} (action byte): {got:?}", v.name));
        }

        let mut host = v.clone();
        for (name, value) in host.raw.headers.iter_mut() {
            if name.eq_ignore_ascii_case("host") {
                value.push_str(".evil");
            }
        }
        let got = verify(&host.request(), &secret, v.now, WINDOW);
        if got != Err(AuthError::Mismatch) {
            failures.push(format!("{} (Host header): {got:?}", v.name));
        }

        let got = verify(&v.request(), "wrong-secret", v.now, WINDOW);
        if got != Err(AuthError::Mismatch) {
            failures.push(format!("{} (wrong secret): {got:?}", v.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn botocore_vectors_expire_outside_the_window() {
    let (_, secret, vectors) = load();
    for v in vectors.iter().filter(|v| v.expect == "ok") {
        for later in [
            v.now + WINDOW + Duration::from_secs(1),
            v.now - WINDOW - Duration::from_secs(1),
        ] {
            let got = verify(&v.request(), &secret, later, WINDOW);
            assert!(
                matches!(got, Err(AuthError::Expired(_))),
                "{}: {got:?}",
                v.name
            );
        }
    }
}

#[test]
fn presigned_url_honours_x_amz_expires() {
    let (_, secret, vectors) = load();
    let v = vectors
        .iter()
        .find(|v| v.name == "v4-query-no-port-3600")
        .expect("test input");
    // Within X-Amz-Expires (3600s) but beyond a 300s window: the window wins.
    let late = v.now + Duration::from_secs(1000);
    assert!(matches!(
        verify(&v.request(), &secret, late, WINDOW),
        Err(AuthError::Expired(_))
    ));
    // A wide window still stops at X-Amz-Expires.
    let day = Duration::from_secs(86_400);
    assert_eq!(verify(&v.request(), &secret, late, day), Ok(()));
    let expired = verify(
        &v.request(),
        &secret,
        v.now + Duration::from_secs(3601),
        day,
    );
    assert!(matches!(expired, Err(AuthError::Expired(m)) if m.contains("X-Amz-Expires")));
}

/// Reads the vectors file through serde_json with the accessors the tests use.
trait Json {
    fn at(&self, key: &str) -> &serde_json::Value;
    fn str(&self) -> &str;
    fn arr(&self) -> &[serde_json::Value];
}

impl Json for serde_json::Value {
    fn at(&self, key: &str) -> &serde_json::Value {
        &self[key]
    }
    fn str(&self) -> &str {
        self.as_str().expect("a string in the vectors file")
    }
    fn arr(&self) -> &[serde_json::Value] {
        self.as_array()
            .map(Vec::as_slice)
            .expect("an array in the vectors file")
    }
}
