//! Malformed, hostile and unusual requests: each gets the right error, and
//! nothing panics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stratus_api::auth::{AuthError, Claim, SignatureVersion, SignedRequest, claim, verify};

/// 2026-11-22T12:34:56Z.
const NOW: u64 = 1_795_350_896;
const WINDOW: Duration = Duration::from_secs(300);
const SECRET: &str = "secret";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn run(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (Result<Claim, AuthError>, Result<(), AuthError>) {
    let req = SignedRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    (claim(&req), verify(&req, SECRET, now(), WINDOW))
}

fn v4_header(auth: &str) -> Result<(), AuthError> {
    let headers = h(&[
        ("Host", "127.0.0.1:8773"),
        ("X-Amz-Date", "20261122T123456Z"),
        ("Authorization", auth),
    ]);
    run("POST", "/", "", &headers, b"Action=DescribeInstances").1
}

fn incomplete(r: Result<(), AuthError>, needle: &str) {
    match r {
        Err(AuthError::Incomplete(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected Incomplete({needle}), got {other:?}"),
    }
}

/// The SigV2 form body of `params`, signed with the test secret.
fn v2_body(method: &str, host: &str, path: &str, params: &[(&str, &str)]) -> Vec<u8> {
    crate::sigv2::signed_form(SECRET, method, host, path, params)
}

fn v2(params: &[(&str, &str)]) -> Result<(), AuthError> {
    let body = v2_body("POST", "127.0.0.1:8773", "/", params);
    run("POST", "/", "", &h(&[("Host", "127.0.0.1:8773")]), &body).1
}

const V2_BASE: [(&str, &str); 5] = [
    ("Action", "DescribeInstances"),
    ("AWSAccessKeyId", "AKID"),
    ("SignatureVersion", "2"),
    ("SignatureMethod", "HmacSHA256"),
    ("Version", "2016-11-15"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    V2_BASE.iter().chain(extra).copied().collect()
}

#[test]
fn empty_request_is_unsigned() {
    let (c, v) = run("", "", "", &[], b"");
    assert_eq!(c, Err(AuthError::Unsigned));
    assert_eq!(v, Err(AuthError::Unsigned));
    assert_eq!(AuthError::Unsigned.code(), "AuthFailure");
    let (c, _) = run(
        "POST",
        "/",
        "",
        &h(&[("Host", "x")]),
        b"Action=DescribeInstances&Version=2016-11-15",
    );
    assert_eq!(c, Err(AuthError::Unsigned));
}

#[test]
fn error_codes_match_ec2() {
    assert_eq!(
        AuthError::Incomplete(String::new()).code(),
        "IncompleteSignature"
    );
    assert_eq!(
        AuthError::Unsupported(String::new()).code(),
        "InvalidParameterValue"
    );
    assert_eq!(AuthError::Expired(String::new()).code(), "RequestExpired");
    assert_eq!(AuthError::Mismatch.code(), "SignatureDoesNotMatch");
    assert_eq!(
        AuthError::Mismatch.to_string(),
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method."
    );
}

#[test]
fn malformed_authorization_headers() {
    incomplete(v4_header("AWS4-HMAC-SHA256"), "Credential");
    incomplete(
        v4_header("AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=00"),
        "Name=Value",
    );
    incomplete(
        v4_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, Signature=00",
        ),
        "SignedHeaders",
    );
    incomplete(
        v4_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/ec2/aws4_request, SignedHeaders=host, Signature=00",
        ),
        "Credential",
    );
    incomplete(
        v4_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws5_request, SignedHeaders=host, Signature=00",
        ),
        "Credential",
    );
    incomplete(
        v4_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, SignedHeaders=host;;x, Signature=00",
        ),
        "empty",
    );
    incomplete(
        v4_header(&format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, SignedHeaders=host;x-nope, Signature={}",
            "0".repeat(64)
        )),
        "x-nope",
    );
    incomplete(
        v4_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=zz",
        ),
        "hex",
    );
    incomplete(
        v4_header("AWS4-HMAC-SHA256 Credential=a, Credential=b, SignedHeaders=host, Signature=00"),
        "more than once",
    );
    // No spaces after the commas is still well formed.
    assert_eq!(
        v4_header(&format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request,SignedHeaders=host,Signature={}",
            "0".repeat(64)
        )),
        Err(AuthError::Mismatch)
    );
    let (c, _) = run(
        "POST",
        "/",
        "",
        &h(&[
            ("x-amz-date", "20261122T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AK/ID/20261122/r/ec2/aws4_request, SignedHeaders=host, Signature=00",
            ),
        ]),
        b"",
    );
    assert_eq!(c.map(|c| c.access_key), Ok("AK/ID".to_string()));
}

#[test]
fn other_schemes_are_unsupported() {
    for auth in [
        "AWS AKID:c2ln",
        "AWS3-HTTPS AWSAccessKeyId=AKID,Algorithm=HmacSHA256,Signature=x",
        "Bearer x",
        "AWS4-ECDSA-P256-SHA256 Credential=x",
    ] {
        assert!(
            matches!(v4_header(auth), Err(AuthError::Unsupported(_))),
            "{auth}"
        );
    }
    let (_, v) = run(
        "GET",
        "/",
        "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&X-Amz-Credential=a",
        &h(&[("Host", "h")]),
        b"",
    );
    assert!(matches!(v, Err(AuthError::Unsupported(m)) if m.contains("ECDSA")));
}

#[test]
fn two_mechanisms_are_refused() {
    let headers = h(&[
        ("Host", "h"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=x"),
    ]);
    let (c, v) = run("GET", "/", "X-Amz-Signature=00", &headers, b"");
    assert!(matches!(c, Err(AuthError::Incomplete(_))));
    assert!(matches!(v, Err(AuthError::Incomplete(_))));
    let (_, v) = run(
        "POST",
        "/",
        "",
        &headers,
        b"AWSAccessKeyId=AKID&Signature=x",
    );
    assert!(matches!(v, Err(AuthError::Incomplete(m)) if m.contains("Only one")));
    let two = h(&[
        ("Authorization", "AWS4-HMAC-SHA256 a=b"),
        ("authorization", "AWS4-HMAC-SHA256 a=b"),
    ]);
    let (_, v) = run("GET", "/", "", &two, b"");
    assert!(matches!(v, Err(AuthError::Incomplete(m)) if m.contains("more than one")));
}

#[test]
fn bad_dates_are_incomplete() {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature={}",
        "0".repeat(64)
    );
    for date in [
        "",
        "2026-11-22T12:34:56Z",
        "20261122T1234ሴZ",
        "99999999T999999Z",
    ] {
        let headers = h(&[
            ("Host", "h"),
            ("X-Amz-Date", date),
            ("Authorization", &auth),
        ]);
        let (_, v) = run("GET", "/", "", &headers, b"");
        incomplete(v, "X-Amz-Date");
    }
    let headers = h(&[("Host", "h"), ("Authorization", &auth)]);
    incomplete(run("GET", "/", "", &headers, b"").1, "Date");
    let headers = h(&[
        ("Host", "h"),
        ("Date", "yesterday"),
        ("Authorization", &auth),
    ]);
    incomplete(run("GET", "/", "", &headers, b"").1, "HTTP date");
}

#[test]
fn presigned_query_problems() {
    let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261122%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=20261122T123456Z&X-Amz-SignedHeaders=host";
    let sig = format!("X-Amz-Signature={}", "0".repeat(64));
    let headers = h(&[("Host", "h")]);
    let (c, v) = run(
        "GET",
        "/",
        &format!("{base}&X-Amz-Expires=300&{sig}"),
        &headers,
        b"",
    );
    assert_eq!(
        c,
        Ok(Claim {
            access_key: "AKID".into(),
            version: SignatureVersion::V4
        })
    );
    assert_eq!(v, Err(AuthError::Mismatch));
    incomplete(run("GET", "/", base, &headers, b"").1, "X-Amz-Signature");
    incomplete(
        run(
            "GET",
            "/",
            &format!("{base}&X-Amz-Expires=604801&{sig}"),
            &headers,
            b"",
        )
        .1,
        "X-Amz-Expires",
    );
    incomplete(
        run(
            "GET",
            "/",
            &format!("{base}&X-Amz-Expires=-1&{sig}"),
            &headers,
            b"",
        )
        .1,
        "X-Amz-Expires",
    );
    incomplete(
        run("GET", "/", &format!("{base}&{sig}&{sig}"), &headers, b"").1,
        "more than once",
    );
}

#[test]
fn sigv2_accepts_good_and_refuses_bad() {
    assert_eq!(v2(&with(&[("Timestamp", "2026-11-22T12:34:56Z")])), Ok(()));
    assert_eq!(
        v2(&with(&[("Timestamp", "2026-11-22T12:34:56.789Z")])),
        Ok(())
    );
    assert_eq!(
        v2(&with(&[("Timestamp", "2026-11-22T12:34:56+00:00")])),
        Ok(())
    );
    assert_eq!(v2(&with(&[("Expires", "2026-11-22T12:38:00Z")])), Ok(()));
    assert!(
        matches!(v2(&with(&[("Expires", "2026-11-22T12:34:00Z")])), Err(AuthError::Expired(m)) if m.contains("not after"))
    );
    assert!(matches!(
        v2(&with(&[("Expires", "2026-11-23T00:00:00Z")])),
        Err(AuthError::Expired(_))
    ));
    assert!(
        matches!(v2(&with(&[("Timestamp", "2026-11-22T12:00:00Z")])), Err(AuthError::Expired(m)) if m.contains("2026-11-22T12:00:00Z"))
    );
    incomplete(v2(&with(&[])), "Timestamp or Expires");
    incomplete(v2(&with(&[("Timestamp", "Sunday")])), "ISO 8601");

    let unsupported = |params: &[(&str, &str)]| {
        let mut p: Vec<_> = params.to_vec();
        p.push(("Timestamp", "2026-11-22T12:34:56Z"));
        let body = v2_body("POST", "127.0.0.1:8773", "/", &p);
        run("POST", "/", "", &h(&[("Host", "127.0.0.1:8773")]), &body).1
    };
    let mut md5 = V2_BASE.to_vec();
    md5[3] = ("SignatureMethod", "HmacMD5");
    assert!(matches!(unsupported(&md5), Err(AuthError::Unsupported(m)) if m.contains("HmacMD5")));
    let mut v1 = V2_BASE.to_vec();
    v1[2] = ("SignatureVersion", "1");
    assert!(
        matches!(unsupported(&v1), Err(AuthError::Unsupported(m)) if m.contains("SignatureVersion"))
    );
}

#[test]
fn sigv2_signature_with_raw_plus_in_get_query() {
    // Old tools sometimes leave '+' in the base64 Signature unescaped.
    let params = with(&[("Timestamp", "2026-11-22T12:34:56Z")]);
    for i in 0..64 {
        let mut p = params.clone();
        let salt = format!("{i}");
        p.push(("Nonce", Box::leak(salt.into_boxed_str())));
        let body = String::from_utf8(v2_body("GET", "h", "/", &p)).expect("test input");
        if !body.contains("%2B") {
            continue;
        }
        let raw = body
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let (_, v) = run("GET", "/", &raw, &h(&[("Host", "h")]), b"");
        assert_eq!(v, Ok(()), "{raw}");
        return;
    }
    panic!("no signature with '+' in 64 tries");
}

#[test]
fn sigv2_host_case_and_empty_path() {
    let params = with(&[("Timestamp", "2026-11-22T12:34:56Z")]);
    let body = v2_body("POST", "ec2.example", "/", &params);
    assert_eq!(
        run("POST", "", "", &h(&[("Host", "EC2.Example")]), &body).1,
        Ok(())
    );
    incomplete(run("POST", "/", "", &[], &body).1, "Host");
}

#[test]
fn garbage_never_panics() {
    let non_utf8: &[u8] = &[
        0xff, 0xfe, b'=', 0x80, b'&', b'S', b'i', b'g', b'n', b'a', b't', b'u', b'r', b'e', b'=',
        0xc3,
    ];
    let headers_sets = [
        h(&[]),
        h(&[("Authorization", "")]),
        h(&[("Authorization", "   ")]),
        h(&[(
            "Authorization",
            "AWS4-HMAC-SHA256 ,,,,=,=,==,Credential=/////,SignedHeaders=;,Signature=",
        )]),
        h(&[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=ሴ/ሴ/ሴ/ሴ/aws4_request, SignedHeaders=host, Signature=ሴ",
            ),
            ("X-Amz-Date", "ሴሴሴሴሴT"),
        ]),
        h(&[
            ("Host", "\u{0}\u{1c}"),
            ("Date", "Mon, 99 Foo 2026 99:99:99 +9999"),
        ]),
    ];
    let queries = [
        "",
        "&&&",
        "=",
        "%",
        "%zz=%",
        "Signature",
        "AWSAccessKeyId=%ff%fe",
        "X-Amz-Algorithm",
        "X-Amz-Signature=&X-Amz-Signature=",
    ];
    let bodies: [&[u8]; 3] = [b"", non_utf8, b"AWSAccessKeyId=a&Signature=%%%&SignatureVersion=2&SignatureMethod=HmacSHA1&Expires=9999-12-31T23:59:59Z"];
    for method in ["GET", "post", "", "ሴ"] {
        for path in ["", "/", "..", "/../../..", "//ሴ/%zz/./"] {
            for headers in &headers_sets {
                for query in queries {
                    for body in bodies {
                        let _ = run(method, path, query, headers, body);
                    }
                }
            }
        }
    }
}

#[test]
fn huge_inputs_are_refused_quickly() {
    let huge = "A".repeat(1 << 20);
    let started = std::time::Instant::now();
    let auth = |value: String| {
        h(&[
            ("Host", "h"),
            ("X-Amz-Date", "20261122T123456Z"),
            ("Authorization", &value),
        ])
    };
    incomplete(
        run(
            "GET",
            "/",
            "",
            &auth(format!("AWS4-HMAC-SHA256 {huge}")),
            b"",
        )
        .1,
        "Name=Value",
    );
    incomplete(
        run(
            "GET",
            "/",
            "",
            &auth(format!(
                "AWS4-HMAC-SHA256 Credential={huge}, SignedHeaders={huge}, Signature={huge}"
            )),
            b"",
        )
        .1,
        "Credential",
    );
    let (c, _) = run("GET", "/", "", &h(&[(&huge, &huge)]), b"");
    assert_eq!(c, Err(AuthError::Unsigned));
    let (c, _) = run("GET", &huge, &huge, &h(&[("Host", &huge)]), huge.as_bytes());
    assert_eq!(c, Err(AuthError::Unsigned));
    let (_, v) = run(
        "POST",
        "/",
        "",
        &h(&[("Host", "h")]),
        format!("Signature={huge}").as_bytes(),
    );
    assert!(v.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn random_mutations_never_panic() {
    // A fixed xorshift stream: reproducible, no dev-dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={}",
        "ab".repeat(32)
    );
    let seed_query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=a&Signature=b%2B&Timestamp=2026-11-22T12%3A34%3A56Z";
    for _ in 0..3000 {
        let mut a = auth.clone().into_bytes();
        let mut q = seed_query.as_bytes().to_vec();
        let mut b =
            b"Action=DescribeInstances&SignatureVersion=2&SignatureMethod=HmacSHA256".to_vec();
        for buf in [&mut a, &mut q, &mut b] {
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % buf.len();
                buf[i] = (next() & 0xff) as u8;
            }
        }
        let a = String::from_utf8_lossy(&a).into_owned();
        let q = String::from_utf8_lossy(&q).into_owned();
        let with_auth = next() % 2 == 0;
        let mut headers = h(&[
            ("Host", "h"),
            ("X-Amz-Date", "20261122T123456Z"),
            ("Content-Type", "x"),
        ]);
        if with_auth {
            headers.push(("Authorization".into(), a));
        }
        let _ = run("POST", "/", &q, &headers, &b);
    }
}
