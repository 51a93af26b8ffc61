//! Authentication through the running endpoint: a replayed request is
//! refused (and a same-second twin is not), expired, tampered and unsigned
//! requests get EC2's codes, and a refused copy cannot use up the genuine
//! request's signature.

use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stratus_api::auth::replay::{ReplayGuard, TWIN_GRACE};
use stratus_api::auth::{SignedRequest, verify};

use super::{Endpoint, Keys, Wire, amz_date, form};

const WINDOW: Duration = Duration::from_secs(300);

/// RFC 3986 unreserved characters stay; everything else is escaped.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// An endpoint whose guard refuses every repeat, twins too.
async fn strict() -> Endpoint {
    Endpoint::start_with(
        |_| {},
        Some(ReplayGuard::with_limits(WINDOW, Duration::ZERO, 1000)),
    )
    .await
}

/// A SigV2 form POST, as boto 2 and euca2ools sign it.
fn v2(endpoint: &Endpoint, keys: &Keys, action: &str) -> Wire {
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let params = [
        ("AWSAccessKeyId", keys.access.as_str()),
        ("Action", action),
        ("SignatureMethod", "HmacSHA256"),
        ("SignatureVersion", "2"),
        ("Timestamp", timestamp.as_str()),
        ("Version", "2016-11-15"),
    ];
    Wire {
        method: "POST",
        query: String::new(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body: crate::sigv2::signed_form(&keys.secret, "POST", &endpoint.host, "/", &params),
    }
}

/// A presigned GET URL (SigV4 in the query), valid for `expires` seconds.
fn presigned(endpoint: &Endpoint, keys: &Keys, action: &str, expires: u32) -> Wire {
    let amz = amz_date(SystemTime::now());
    let credential = format!("{}/{}/nova/ec2/aws4_request", keys.access, &amz[..8]);
    let base = format!(
        "Action={action}&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential={}&X-Amz-Date={amz}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
        enc(&credential)
    );
    let headers = vec![("host".to_owned(), endpoint.host.clone())];
    let placeholder = format!("{base}&X-Amz-Signature={}", "0".repeat(64));
    let signature = stratus_api::auth::sigv4::expected_signature(
        &SignedRequest {
            method: "GET",
            path: "/",
            query: &placeholder,
            headers: &headers,
            body: b"",
        },
        &keys.secret,
    )
    .expect("sign");
    Wire {
        method: "GET",
        query: format!("{base}&X-Amz-Signature={signature}"),
        headers,
        body: Vec::new(),
    }
}

#[tokio::test]
async fn a_replayed_request_is_refused_in_every_signature_form() {
    let endpoint = strict().await;
    let keys = endpoint.alpha.clone();
    let header_form = endpoint.signed(
        &keys,
        &form(
            "CreateSecurityGroup",
            &[("GroupName", "once"), ("GroupDescription", "d")],
        ),
        SystemTime::now(),
    );
    let forms = [
        ("SigV4 header", header_form),
        ("SigV2", v2(&endpoint, &keys, "DescribeKeyPairs")),
        (
            "SigV4 presigned",
            presigned(&endpoint, &keys, "DescribeKeyPairs", 300),
        ),
    ];
    for (what, wire) in &forms {
        endpoint.send(wire).await.ok();
        let again = endpoint.send(wire).await.refused(401, "AuthFailure");
        let message = again.texts("Message").join("");
        assert!(message.contains("already accepted"), "{what}: {message}");
    }
    assert_eq!(
        endpoint
            .call("DescribeSecurityGroups", &[("GroupName.1", "once")])
            .await
            .ok()
            .texts("groupName"),
        ["once"],
        "the replayed CreateSecurityGroup was not run twice"
    );
    // The same call signed again (another second, another signature) is fine.
    let fresh = endpoint.signed(
        &keys,
        &form("DescribeKeyPairs", &[]),
        SystemTime::now() - Duration::from_secs(2),
    );
    endpoint.send(&fresh).await.ok();
}

#[tokio::test]
async fn same_second_twins_pass_and_a_later_replay_does_not() {
    let endpoint = Endpoint::start().await;
    let wire = endpoint.signed(
        &endpoint.alpha,
        &form("DescribeKeyPairs", &[]),
        SystemTime::now(),
    );
    // What boto3 sends for two identical calls within one second.
    endpoint.send(&wire).await.ok();
    endpoint.send(&wire).await.ok();
    tokio::time::sleep(TWIN_GRACE + Duration::from_secs(1)).await;
    endpoint.send(&wire).await.refused(401, "AuthFailure");
}

#[tokio::test]
async fn expired_tampered_and_unsigned_requests_get_ec2_codes() {
    let endpoint = strict().await;
    let alpha = endpoint.alpha.clone();
    let beta = endpoint.keys("beta").await;
    let body = form("DescribeSecurityGroups", &[("GroupName.1", "default")]);
    let now = SystemTime::now();

    for at in [
        now - WINDOW - Duration::from_secs(10),
        now + WINDOW + Duration::from_secs(10),
    ] {
        let old = endpoint.signed(&alpha, &body, at);
        endpoint.send(&old).await.refused(400, "RequestExpired");
    }

    let genuine = endpoint.signed(&alpha, &body, now);
    let mut changed_param = genuine.clone();
    changed_param.body = form("DescribeSecurityGroups", &[("GroupName.1", "other")]).into_bytes();
    let mut changed_action = genuine.clone();
    changed_action.body = form("DeleteSecurityGroup", &[("GroupName.1", "default")]).into_bytes();
    let mut other_key = genuine.clone();
    let mut flipped = genuine.clone();
    let mut redated = genuine.clone();
    for (name, value) in &mut other_key.headers {
        if name == "authorization" {
            *value = value.replace(&alpha.access, &beta.access);
        }
    }
    for (name, value) in &mut flipped.headers {
        if name == "authorization" {
            let last = value.pop().expect("a signature");
            value.push(if last == '0' { '1' } else { '0' });
        }
    }
    for (name, value) in &mut redated.headers {
        if name == "x-amz-date" {
            *value = amz_date(now + Duration::from_secs(1));
        }
    }
    for (what, wire) in [
        ("a parameter changed", &changed_param),
        ("the action changed", &changed_action),
        ("another project's key named", &other_key),
        ("a signature digit changed", &flipped),
        ("the date changed", &redated),
    ] {
        let answer = endpoint.send(wire).await;
        assert_eq!(
            (answer.status, answer.code().as_deref()),
            (403, Some("SignatureDoesNotMatch")),
            "{what}: {}",
            answer.body
        );
    }
    // None of those used up the genuine request's signature.
    endpoint.send(&genuine).await.ok();

    let mut unsigned = genuine.clone();
    unsigned.headers.retain(|(n, _)| n != "authorization");
    endpoint.send(&unsigned).await.refused(401, "AuthFailure");
    let mut partial = genuine.clone();
    for (name, value) in &mut partial.headers {
        if name == "authorization" {
            *value = "AWS4-HMAC-SHA256 Credential=x".into();
        }
    }
    endpoint
        .send(&partial)
        .await
        .refused(400, "IncompleteSignature");
    let stranger = Keys {
        access: "AKIANOSUCHKEY0000000".into(),
        secret: "x".into(),
    };
    endpoint
        .call_as(&stranger, "DescribeKeyPairs", &[])
        .await
        .refused(401, "AuthFailure");
    let wrong_secret = Keys {
        access: alpha.access.clone(),
        secret: "wrong".into(),
    };
    endpoint
        .call_as(&wrong_secret, "DescribeKeyPairs", &[])
        .await
        .refused(403, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn repeated_parameters_whose_order_is_not_signed_are_refused() {
    let endpoint = strict().await;
    let (a_then_b, b_then_a) = (
        "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=a&KeyName.1=b",
        "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=b&KeyName.1=a",
    );
    let wire = endpoint.sign(&endpoint.alpha, "GET", a_then_b, b"", SystemTime::now());
    // SigV4 sorts the query before signing, so swapping the repeats keeps the
    // signature valid: the handler must not pick one copy over the other.
    let swapped = SignedRequest {
        method: "GET",
        path: "/",
        query: b_then_a,
        headers: &wire.headers,
        body: b"",
    };
    assert_eq!(
        verify(&swapped, &endpoint.alpha.secret, SystemTime::now(), WINDOW),
        Ok(())
    );
    // Signed apart (another second), so the replay guard stays out of it.
    let reordered = endpoint.sign(
        &endpoint.alpha,
        "GET",
        b_then_a,
        b"",
        SystemTime::now() - Duration::from_secs(1),
    );
    for request in [&wire, &reordered] {
        let answer = endpoint
            .send(request)
            .await
            .refused(400, "InvalidParameterValue");
        assert!(answer.body.contains("more than once"), "{}", answer.body);
    }
}
