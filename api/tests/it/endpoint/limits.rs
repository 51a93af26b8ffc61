//! Size limits at the endpoint: a body or query over `[api]
//! max_request_bytes` gets `RequestEntityTooLarge`, too many parameters get
//! `InvalidParameterValue` before the signature is even read, lists and
//! numbered parameters stay bounded, a client slower than `read_timeout_secs`
//! is cut off, and the endpoint keeps serving.

use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Endpoint, Wire};

/// A request with no signature at all.
fn unsigned(method: &'static str, query: String, body: Vec<u8>) -> Wire {
    Wire {
        method,
        query,
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body,
    }
}

#[tokio::test]
async fn a_body_or_query_over_the_limit_is_refused_with_an_ec2_error() {
    let endpoint = Endpoint::start().await;
    let limit = endpoint.cloud.config.max_request_bytes;
    let big = format!("Action=DescribeInstances&Pad={}", "A".repeat(limit));
    // Signed or not, the size is checked first.
    let signed = endpoint.signed(&endpoint.alpha, &big, SystemTime::now());
    for wire in [
        signed,
        unsigned("POST", String::new(), big.clone().into_bytes()),
    ] {
        let answer = endpoint.send(&wire).await;
        assert_eq!(answer.status, 413, "{}", answer.body);
        assert_eq!(answer.code().as_deref(), Some("RequestEntityTooLarge"));
    }
    // Several megabytes are refused as quickly.
    let started = Instant::now();
    let huge = unsigned("POST", String::new(), vec![b'A'; 8 << 20]);
    assert_eq!(endpoint.send(&huge).await.status, 413);
    assert!(started.elapsed() < Duration::from_secs(10));

    let small = Endpoint::start_with(|c| c.max_request_bytes = 4096, None).await;
    let query = format!("Action=DescribeInstances&Pad={}", "A".repeat(4096));
    let answer = small.send(&unsigned("GET", query, Vec::new())).await;
    assert_eq!(
        (answer.status, answer.code().as_deref()),
        (413, Some("RequestEntityTooLarge"))
    );
    // Under the limit, the request goes on to be authenticated.
    let fits = small
        .call("DescribeKeyPairs", &[("Pad", &"A".repeat(3000))])
        .await;
    assert_eq!(fits.status, 200, "{}", fits.body);
}

#[tokio::test]
async fn too_many_parameters_are_refused_before_the_signature_is_read() {
    let endpoint = Endpoint::start().await;
    let pairs = |n: usize| {
        let mut body = String::from("Action=DescribeInstances");
        for i in 1..n {
            body.push_str(&format!("&a{i}=b"));
        }
        body
    };
    let over = endpoint
        .send(&unsigned("POST", String::new(), pairs(10_001).into_bytes()))
        .await
        .refused(400, "InvalidParameterValue");
    assert!(over.body.contains("10001 parameters"), "{}", over.body);
    // At the limit, the unsigned request reaches authentication.
    endpoint
        .send(&unsigned("POST", String::new(), pairs(10_000).into_bytes()))
        .await
        .refused(401, "AuthFailure");
    // Signed, at the limit, it is answered.
    let wire = endpoint.signed(&endpoint.alpha, &pairs(10_000), SystemTime::now());
    endpoint.send(&wire).await.ok();
}

#[tokio::test]
async fn a_head_too_large_for_http_is_refused_and_the_endpoint_keeps_serving() {
    let endpoint = Endpoint::start().await;
    // Written by hand: HTTP clients refuse to send a URI this long.
    let mut stream = tokio::net::TcpStream::connect(&endpoint.host)
        .await
        .expect("connect");
    let head = format!(
        "GET /?Action=DescribeInstances&Pad={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "A".repeat(1 << 20),
        endpoint.host
    );
    // The server may close before taking it all; what it answered counts.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let status_line = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    assert!(
        status_line.starts_with("HTTP/1.1 4"),
        "a 1 MiB query got {status_line:?}"
    );
    endpoint.call("DescribeKeyPairs", &[]).await.ok();
}

/// Reads what the endpoint sends on `stream` until it closes, or panics
/// if it is still open after `limit`.
async fn until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the endpoint still holds the connection after {limit:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// A connection to the endpoint that has sent `part` of a request (`{host}`
/// replaced by the endpoint's address) and nothing more.
async fn send_part(endpoint: &Endpoint, part: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(&endpoint.host)
        .await
        .expect("connect");
    let part = part.replace("{host}", &endpoint.host);
    stream.write_all(part.as_bytes()).await.expect("write");
    stream
}

#[tokio::test]
async fn a_client_too_slow_with_its_head_or_body_is_cut_off_and_others_are_served() {
    let endpoint = Endpoint::start_with(|c| c.read_timeout_secs = 1, None).await;
    // Half a head, then nothing.
    let mut slow_head = send_part(
        &endpoint,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-",
    )
    .await;
    // A whole head promising 100 bytes of body, then 10 of them.
    let mut slow_body = send_part(
        &endpoint,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nAction=Des",
    )
    .await;
    // Meanwhile everyone else is answered.
    endpoint.call("DescribeKeyPairs", &[]).await.ok();

    let limit = Duration::from_secs(20);
    let answer = until_closed(&mut slow_body, limit).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(answer.contains("<RequestID>"), "{answer}");
    // hyper closes a connection whose head is late, at most with a bare 408.
    let answer = until_closed(&mut slow_head, limit).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    endpoint.call("DescribeKeyPairs", &[]).await.ok();
}

#[tokio::test]
async fn long_lists_and_huge_indexes_stay_bounded() {
    let endpoint = Endpoint::start().await;
    let ids: Vec<(String, String)> = (1..=1001)
        .map(|i| (format!("InstanceId.{i}"), format!("i-{i:017x}")))
        .collect();
    let params: Vec<(&str, &str)> = ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let answer = endpoint
        .call("DescribeInstances", &params)
        .await
        .refused(400, "InvalidParameterValue");
    assert!(answer.body.contains("Too many"), "{}", answer.body);

    let started = Instant::now();
    for index in [
        "999999999",
        "18446744073709551615",
        "18446744073709551616",
        "0",
        "-1",
    ] {
        let name = format!("InstanceId.{index}");
        let answer = endpoint
            .call(
                "DescribeInstances",
                &[(name.as_str(), "i-00000000000000001")],
            )
            .await;
        assert!(
            answer.status == 200 || answer.code().as_deref() == Some("InvalidInstanceID.NotFound"),
            "{index}: {}",
            answer.body
        );
    }
    // A glob as long as a request allows, against tags that almost match.
    let groups = endpoint.call("DescribeSecurityGroups", &[]).await.ok();
    let group = groups.texts("groupId").remove(0);
    let tags: Vec<(String, String)> = (1..=50)
        .flat_map(|i| {
            [
                (format!("Tag.{i}.Key"), format!("k{i}")),
                (format!("Tag.{i}.Value"), "a".repeat(256)),
            ]
        })
        .collect();
    let mut params: Vec<(&str, &str)> = vec![("ResourceId.1", &group)];
    params.extend(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    endpoint.call("CreateTags", &params).await.ok();
    let stars = format!("{}b", "*a".repeat(100_000));
    let literal = format!("*{}b", "a".repeat(200_000));
    for pattern in [&stars, &literal] {
        let answer = endpoint
            .call(
                "DescribeTags",
                &[("Filter.1.Name", "value"), ("Filter.1.Value.1", pattern)],
            )
            .await
            .ok();
        assert!(answer.texts("value").is_empty(), "nothing matches");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
