//! STS on the EC2 endpoint: GetCallerIdentity in the Query protocol (as
//! botocore sends it) and the JSON one (as newer SDKs do), signed for
//! `sts` in any region; the project's account, the user's ARN and id; and
//! STS's refusals, in STS's own error forms.

use std::time::{Duration, SystemTime};

use stratus_api::auth::SignedRequest;
use stratus_api::auth::replay::ReplayGuard;
use stratus_api::ec2::ids::account_id;
use stratus_api::sts::identity::Identity;

use super::{Answer, Endpoint, Keys, Wire, amz_date};

/// botocore's body for GetCallerIdentity.
const QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const JSON: &str = "application/x-amz-json-1.0";
const TARGET: &str = "AWSSecurityTokenServiceV20110615.GetCallerIdentity";
/// The region boto3's `sts` client signs for by default; any goes.
const REGION: &str = "us-east-1";

/// A POST of `body` signed by `keys` for `service` at `at`, with `extra`
/// headers signed too, as botocore signs them.
fn signed(
    endpoint: &Endpoint,
    keys: &Keys,
    service: &str,
    extra: &[(&str, &str)],
    body: &str,
    at: SystemTime,
) -> Wire {
    let amz = amz_date(at);
    let date = amz.get(..8).unwrap_or_default().to_owned();
    let mut headers: Vec<(String, String)> = extra
        .iter()
        .map(|(n, v)| (n.to_lowercase(), (*v).to_owned()))
        .collect();
    headers.push(("host".into(), endpoint.host.clone()));
    headers.push(("x-amz-date".into(), amz));
    headers.sort();
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed_headers = names.join(";");
    let authorization = |signature: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/{REGION}/{service}/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}",
            keys.access
        )
    };
    headers.push(("authorization".into(), authorization(&"0".repeat(64))));
    let signature = stratus_api::auth::sigv4::expected_signature(
        &SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        &keys.secret,
    )
    .expect("sign");
    if let Some(last) = headers.last_mut() {
        last.1 = authorization(&signature);
    }
    Wire {
        method: "POST",
        query: String::new(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// GetCallerIdentity as boto3's `sts` client sends it.
fn query(endpoint: &Endpoint, keys: &Keys) -> Wire {
    let form = [("content-type", FORM)];
    signed(endpoint, keys, "sts", &form, QUERY, SystemTime::now())
}

/// GetCallerIdentity in the JSON protocol, with `target` and `body`.
fn json(endpoint: &Endpoint, keys: &Keys, target: &str, body: &str) -> Wire {
    let headers = [("content-type", JSON), ("x-amz-target", target)];
    signed(endpoint, keys, "sts", &headers, body, SystemTime::now())
}

/// An answer with its headers, for the JSON protocol's.
struct Full {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Full {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

async fn send_full(endpoint: &Endpoint, wire: &Wire) -> Full {
    let mut request = reqwest::Client::new()
        .post(&endpoint.url)
        .body(wire.body.clone());
    for (name, value) in wire.headers.iter().filter(|(n, _)| n != "host") {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("the endpoint answers");
    Full {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

/// Panics unless `answer` is STS's Query error document with `code`.
fn sts_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        (answer.status, answer.code().as_deref()),
        (status, Some(code)),
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{}",
        answer.body
    );
    assert_eq!(answer.texts("Type"), ["Sender"], "{}", answer.body);
    assert_eq!(answer.texts("RequestId").len(), 1, "{}", answer.body);
}

#[tokio::test]
async fn get_caller_identity_answers_the_projects_account_in_the_query_protocol() {
    let endpoint = Endpoint::start().await;
    let answer = endpoint.send(&query(&endpoint, &endpoint.alpha)).await.ok();
    let account = account_id("alpha");
    assert!(
        answer.body.contains(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult>"
        ),
        "{}",
        answer.body
    );
    assert_eq!(answer.texts("Account"), [account.as_str()]);
    assert_eq!(
        answer.texts("Arn"),
        [format!("arn:aws:iam::{account}:user/user")]
    );
    assert_eq!(
        answer.texts("UserId"),
        [Identity::of("alpha", "user").user_id]
    );
    let request_id = answer.texts("RequestId");
    assert_eq!(request_id.len(), 1, "{}", answer.body);
    assert!(!request_id[0].is_empty());
    assert_ne!(account, "alpha");
}

#[tokio::test]
async fn the_json_protocol_answers_the_same_identity() {
    let endpoint = Endpoint::start().await;
    let full = send_full(&endpoint, &json(&endpoint, &endpoint.alpha, TARGET, "{}")).await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(full.header("content-type"), Some(JSON));
    assert!(
        full.header("x-amzn-requestid")
            .is_some_and(|id| !id.is_empty())
    );
    let me = Identity::of("alpha", "user");
    let body = full.json();
    assert_eq!(body["Account"], me.account.as_str());
    assert_eq!(body["Arn"], me.arn.as_str());
    assert_eq!(body["UserId"], me.user_id.as_str());
    // An empty body is no input too.
    let empty = send_full(&endpoint, &json(&endpoint, &endpoint.alpha, TARGET, "")).await;
    assert_eq!((empty.status, empty.json()), (200, body));
}

#[tokio::test]
async fn each_key_of_a_user_is_one_identity_and_another_project_is_another_account() {
    let endpoint = Endpoint::start().await;
    let identity = |answer: Answer| {
        let answer = answer.ok();
        (
            answer.texts("Account").remove(0),
            answer.texts("Arn").remove(0),
            answer.texts("UserId").remove(0),
        )
    };
    let first = identity(endpoint.send(&query(&endpoint, &endpoint.alpha)).await);
    let again = identity(endpoint.send(&query(&endpoint, &endpoint.alpha)).await);
    let second_key = endpoint.keys("alpha").await;
    let other_key = identity(endpoint.send(&query(&endpoint, &second_key)).await);
    assert_eq!(first, again);
    assert_eq!(first, other_key);
    let beta = endpoint.keys("beta").await;
    let (account, arn, user_id) = identity(endpoint.send(&query(&endpoint, &beta)).await);
    assert_eq!(account, account_id("beta"));
    assert_ne!(account, first.0);
    assert_ne!(arn, first.1);
    assert_ne!(user_id, first.2);
}

#[tokio::test]
async fn bad_credentials_are_refused_as_sts_refuses_them() {
    // A guard that refuses every repeat, so the replay below is one.
    let guard = ReplayGuard::with_limits(Duration::from_secs(300), Duration::ZERO, 1000);
    let endpoint = Endpoint::start_with(|_| {}, Some(guard)).await;
    let stranger = Keys {
        access: "AKIANOSUCHKEY0000000".into(),
        secret: "x".into(),
    };
    let answer = endpoint.send(&query(&endpoint, &stranger)).await;
    sts_refused(&answer, 403, "InvalidClientTokenId");
    let wrong = Keys {
        secret: "wrong-secret".into(),
        ..endpoint.alpha.clone()
    };
    let answer = endpoint.send(&query(&endpoint, &wrong)).await;
    sts_refused(&answer, 403, "SignatureDoesNotMatch");
    let stale = SystemTime::now() - Duration::from_secs(3600);
    let old = signed(
        &endpoint,
        &endpoint.alpha,
        "sts",
        &[("content-type", FORM)],
        QUERY,
        stale,
    );
    let answer = endpoint.send(&old).await;
    sts_refused(&answer, 403, "SignatureDoesNotMatch");
    assert!(answer.texts("Message")[0].starts_with("Signature expired"));
    let unsigned = Wire {
        method: "POST",
        query: String::new(),
        headers: vec![("content-type".into(), FORM.into())],
        body: QUERY.as_bytes().to_vec(),
    };
    sts_refused(
        &endpoint.send(&unsigned).await,
        403,
        "MissingAuthenticationToken",
    );
    // The same signed request twice: the second is a replay.
    let once = query(&endpoint, &endpoint.alpha);
    endpoint.send(&once).await.ok();
    sts_refused(&endpoint.send(&once).await, 403, "AccessDenied");
    // In the JSON protocol: the code in `__type` and x-amzn-query-error.
    let full = send_full(&endpoint, &json(&endpoint, &wrong, TARGET, "{}")).await;
    assert_eq!(full.status, 403, "{}", full.body);
    assert_eq!(
        full.json()["__type"],
        "com.amazonaws.sts#SignatureDoesNotMatch"
    );
    assert_eq!(
        full.header("x-amzn-query-error"),
        Some("SignatureDoesNotMatch;Sender")
    );
}

#[tokio::test]
async fn unknown_actions_and_bad_input_are_refused_in_each_protocols_form() {
    let endpoint = Endpoint::start_with(|c| c.max_request_bytes = 2048, None).await;
    let alpha = endpoint.alpha.clone();
    let form = [("content-type", FORM)];
    let now = SystemTime::now();
    let assume = "Action=AssumeRole&Version=2011-06-15&RoleArn=x&RoleSessionName=y";
    let answer = endpoint
        .send(&signed(&endpoint, &alpha, "sts", &form, assume, now))
        .await;
    sts_refused(&answer, 400, "InvalidAction");
    // Signed for STS, an EC2 action is STS's unknown action, not EC2's.
    let ec2 = "Action=DescribeInstances&Version=2016-11-15";
    let answer = endpoint
        .send(&signed(&endpoint, &alpha, "sts", &form, ec2, now))
        .await;
    sts_refused(&answer, 400, "InvalidAction");
    let answer = endpoint
        .send(&signed(
            &endpoint,
            &alpha,
            "sts",
            &form,
            "Version=2011-06-15",
            now,
        ))
        .await;
    sts_refused(&answer, 400, "MissingAction");
    let big = format!("{QUERY}&Padding={}", "x".repeat(4096));
    let answer = endpoint
        .send(&signed(&endpoint, &alpha, "sts", &form, &big, now))
        .await;
    sts_refused(&answer, 413, "RequestEntityTooLarge");
    let wire = json(
        &endpoint,
        &alpha,
        "AWSSecurityTokenServiceV20110615.AssumeRole",
        "{}",
    );
    let full = send_full(&endpoint, &wire).await;
    assert_eq!(full.status, 400, "{}", full.body);
    assert_eq!(
        full.header("x-amzn-query-error"),
        Some("UnknownOperationException;Sender")
    );
    let full = send_full(&endpoint, &json(&endpoint, &alpha, TARGET, "[1]")).await;
    assert_eq!(full.status, 400, "{}", full.body);
    assert_eq!(
        full.json()["__type"],
        "com.amazonaws.sts#SerializationException"
    );
}

#[tokio::test]
async fn a_signature_scoped_to_ec2_does_not_reach_sts_nor_the_reverse() {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    // STS's action and version, signed for ec2: STS refuses the scope.
    let wire = endpoint.signed(&alpha, QUERY, SystemTime::now());
    let answer = endpoint.send(&wire).await;
    sts_refused(&answer, 400, "IncompleteSignature");
    assert!(
        answer.texts("Message")[0].contains("'sts', not 'ec2'"),
        "{}",
        answer.body
    );
    // STS's action at EC2's version is EC2's unknown action.
    let wire = endpoint.signed(
        &alpha,
        "Action=GetCallerIdentity&Version=2016-11-15",
        SystemTime::now(),
    );
    endpoint.send(&wire).await.refused(400, "InvalidAction");
    // An EC2 request still answers as before.
    endpoint.call("DescribeSecurityGroups", &[]).await.ok();
    // Signed with SigV2 (no scope), STS's action and version ask STS.
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let params = [
        ("AWSAccessKeyId", alpha.access.as_str()),
        ("Action", "GetCallerIdentity"),
        ("SignatureMethod", "HmacSHA256"),
        ("SignatureVersion", "2"),
        ("Timestamp", timestamp.as_str()),
        ("Version", "2011-06-15"),
    ];
    let v2 = Wire {
        method: "POST",
        query: String::new(),
        headers: vec![("content-type".into(), FORM.into())],
        body: crate::sigv2::signed_form(&alpha.secret, "POST", &endpoint.host, "/", &params),
    };
    let answer = endpoint.send(&v2).await.ok();
    assert_eq!(answer.texts("Account"), [account_id("alpha")]);
}
