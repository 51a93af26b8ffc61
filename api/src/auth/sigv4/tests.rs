//! Vectors from the AWS Signature Version 4 test suite (2015-08-30 edition):
//! each is the suite's raw request and the signature from its `.authz` file.

use super::canonical::{UNSIGNED_PAYLOAD, remove_dot_segments};
use super::*;
use std::time::UNIX_EPOCH;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const CREDENTIAL: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
/// 2015-08-30T12:36:00Z.
const SUITE_TIME: u64 = 1_440_938_160;

/// A raw suite request, split the way a server would hand it over.
struct Raw {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    /// The request as the verifiers take it.
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn raw(text: &str) -> Raw {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let method = request_line.split(' ').next().unwrap_or_default();
    // The target may hold spaces (get-space), so cut at the last one.
    let target = request_line
        .strip_prefix(method)
        .and_then(|rest| rest.trim_start().rsplit_once(' '))
        .map(|(target, _)| target)
        .unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Raw {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn signed(text: &str, signed_headers: &str, signature: &str) -> Raw {
    let mut r = raw(text);
    r.headers.push((
        "Authorization".to_string(),
        format!("{ALGORITHM} Credential={CREDENTIAL}, SignedHeaders={signed_headers}, Signature={signature}"),
    ));
    r
}

fn check(r: &Raw) -> Result<(), AuthError> {
    let req = r.request();
    let now = UNIX_EPOCH + Duration::from_secs(SUITE_TIME);
    verify_for_service(&req, SECRET, now, Duration::from_secs(300), "service")
}

const HD: &str = "host;x-amz-date";

/// (name, raw request, SignedHeaders, signature)
const SUITE: &[(&str, &str, &str, &str)] = &[
    (
        "get-vanilla",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-vanilla-empty-query-key",
        "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ),
    (
        "get-vanilla-query-order-key",
        "GET /?Param1=value2&Param1=Value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-query-order-value",
        "GET /?Param1=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    (
        "get-vanilla-utf8-query",
        "GET /?ሴ=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-header-key-duplicate",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
        "host;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-order",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
        "host;my-header1;x-amz-date",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ),
    (
        "get-header-value-trim",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "get-unreserved",
        "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-utf8",
        "GET /ሴ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "normalize-path/get-relative",
        "GET /example/.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "normalize-path/get-slashes",
        "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    (
        "normalize-path/get-space",
        "GET /example space/ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    (
        "post-vanilla",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "post-vanilla-query",
        "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        HD,
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    (
        "post-header-key-sort",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
        "host;my-header1;x-amz-date",
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
    (
        "post-header-value-case",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
        "host;my-header1;x-amz-date",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    (
        "post-sts-token/post-sts-header-before",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
        "host;x-amz-date;x-amz-security-token",
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    (
        "post-x-www-form-urlencoded-parameters",
        "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
        "content-type;host;x-amz-date",
        "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    ),
];

#[test]
fn aws_suite_vectors_verify() {
    for (name, text, signed_headers, signature) in SUITE {
        assert_eq!(
            check(&signed(text, signed_headers, signature)),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn aws_suite_vectors_fail_when_tampered() {
    for (name, text, signed_headers, signature) in SUITE {
        let mut r = signed(text, signed_headers, signature);
        if r.body.is_empty() {
            r.headers[0].1.push('x');
        } else {
            r.body[0] ^= 1;
        }
        assert_eq!(check(&r), Err(AuthError::Mismatch), "{name}");
    }
}

#[test]
fn suite_canonical_request_matches_creq() {
    let r = raw(
        "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
    );
    let req = r.request();
    assert_eq!(
        canonical::requests(&req, HD, false),
        Ok(vec![
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string()
        ])
    );
}

#[test]
fn dot_segments_follow_botocore() {
    for (input, want) in [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("/services/Cloud", "/services/Cloud"),
        ("/services/Cloud/", "/services/Cloud/"),
        ("/services//Cloud/./", "/services/Cloud/"),
        ("/a/b/../c", "/a/c"),
        ("/..", "/"),
        ("/example1/example2/../..", "/"),
    ] {
        assert_eq!(remove_dot_segments(input), want, "{input:?}");
    }
}

#[test]
fn wrong_service_and_scope_date_are_refused() {
    let r = signed(SUITE[0].1, HD, SUITE[0].3);
    let req = r.request();
    let now = UNIX_EPOCH + Duration::from_secs(SUITE_TIME);
    assert!(matches!(
        verify_for_service(&req, SECRET, now, Duration::from_secs(300), SERVICE),
        Err(AuthError::Incomplete(m)) if m.contains("'ec2'")
    ));

    let mut r = signed(SUITE[0].1, HD, SUITE[0].3);
    r.headers[1].1 = "20150831T000000Z".into();
    assert!(matches!(check(&r), Err(AuthError::Incomplete(m)) if m.contains("scope")));
}

#[test]
fn stale_request_is_expired() {
    let r = signed(SUITE[0].1, HD, SUITE[0].3);
    let req = r.request();
    let now = UNIX_EPOCH + Duration::from_secs(SUITE_TIME + 301);
    assert!(matches!(
        verify_for_service(&req, SECRET, now, Duration::from_secs(300), "service"),
        Err(AuthError::Expired(_))
    ));
}

#[test]
fn host_must_be_signed() {
    let r = signed(SUITE[0].1, "x-amz-date", SUITE[0].3);
    assert!(matches!(check(&r), Err(AuthError::Incomplete(m)) if m.contains("Host")));
}

#[test]
fn declared_payload_hash_must_match_body() {
    let mut r = signed(SUITE[15].1, HD, SUITE[15].3);
    r.headers.push((
        "X-Amz-Content-Sha256".into(),
        "0000000000000000000000000000000000000000000000000000000000000000".into(),
    ));
    assert_eq!(check(&r), Err(AuthError::Mismatch));
    let mut r = signed(SUITE[20].1, "content-type;host;x-amz-date", SUITE[20].3);
    r.headers
        .push(("X-Amz-Content-Sha256".into(), UNSIGNED_PAYLOAD.into()));
    assert!(matches!(check(&r), Err(AuthError::Unsupported(_))));
}

#[test]
fn wire_path_is_encoded_again() {
    // botocore quotes the already-encoded path, so '%' itself becomes %25:
    // the "encode twice" of the AWS documentation for non-S3 services.
    let canonical = |p: &str| params::encode_path(&remove_dot_segments(p));
    assert_eq!(canonical("/a%20b/"), "/a%2520b/");
    assert_eq!(canonical("/services/Cloud"), "/services/Cloud");
    assert_eq!(canonical("/ሴ"), "/%E1%88%B4");
    assert_eq!(canonical(""), "/");
}
