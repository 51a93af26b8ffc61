//! Huge inputs straight into each target: multi-megabyte bodies, 100,000
//! parameters, numbered parameters with enormous indexes, megabyte texts and
//! rule fields. Each is refused or answered in bounded time, and the memory
//! it takes at its peak (measured by `alloc.rs`) is a small multiple of the
//! input, or nothing at all when the input is refused up front.

use std::time::{Duration, Instant, SystemTime};

use stratus_api::auth::{SignedRequest, verify};
use stratus_api::ec2::params::{MAX_PARAMS, Params};
use stratus_api::ec2::xml::Xml;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec};

use crate::alloc::peak;

const MIB: usize = 1 << 20;

/// Runs `call`, failing if it takes absurdly long; prints what it took.
fn bounded<T>(what: &str, input: usize, call: impl FnOnce() -> T) -> (T, usize) {
    let started = Instant::now();
    let (out, bytes) = peak(call);
    let took = started.elapsed();
    println!("{what}: {input} bytes in, peak {bytes} bytes, {took:.2?}");
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    (out, bytes)
}

/// `n` pairs `a<i>=b`.
fn pairs(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("a{i}=b&"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn the_strict_reader_refuses_too_many_pairs_before_allocating() {
    let body = pairs(100_000);
    let (refused, bytes) = bounded("from_request, 100k pairs", body.len(), || {
        Params::from_request(b"", Some(&body))
    });
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.code),
        Err("InvalidParameterValue")
    );
    assert!(bytes < 4096, "refusing took {bytes} bytes");

    let most = pairs(MAX_PARAMS);
    let (accepted, bytes) = bounded("from_request, 10k pairs", most.len(), || {
        Params::from_request(b"", Some(&most))
    });
    assert!(accepted.is_ok());
    assert!(
        bytes < 40 * most.len(),
        "{bytes} bytes for {} in",
        most.len()
    );
}

#[test]
fn the_loose_reader_stays_linear_on_huge_bodies() {
    let one_value = [b"a=".as_slice(), &vec![b'x'; 4 * MIB]].concat();
    let (_, bytes) = bounded("parse, one 4 MiB value", one_value.len(), || {
        Params::parse(&one_value)
    });
    assert!(bytes < 3 * one_value.len(), "{bytes}");
    let many = pairs(100_000);
    let (p, bytes) = bounded("parse, 100k pairs", many.len(), || Params::parse(&many));
    assert!(bytes < 40 * many.len(), "{bytes}");
    assert_eq!(p.get("a99999"), Some("b"));
}

#[test]
fn numbered_parameters_with_huge_indexes_or_counts_stay_bounded() {
    let form: String = (0..100_000)
        .map(|i| format!("InstanceId.{}=i-{i:x}&", 999_999_999u64 * (i + 1)))
        .collect();
    let p = Params::parse(form.as_bytes());
    let (list, _) = bounded("list of 100k", form.len(), || p.list("InstanceId"));
    assert!(list.is_err(), "a 100,000-member list was accepted");
    let (structs, _) = bounded("structs of 100k", form.len(), || p.structs("InstanceId"));
    assert!(structs.map(|s| s.is_empty()).unwrap_or(true));

    let edges = "InstanceId.18446744073709551615=last&InstanceId.18446744073709551616=over\
                 &InstanceId.0=zero&InstanceId.999999999=big&InstanceId.-1=neg&InstanceId.1e3=exp";
    let p = Params::parse(edges.as_bytes());
    assert_eq!(
        p.list("InstanceId").expect("list"),
        ["zero", "big", "last"],
        "indexes past u64 and non-numbers are not list members"
    );
    let nested: String = (1..=100)
        .flat_map(|f| {
            (1..=100).map(move |v| format!("Filter.{f}.Value.{v}=x&Filter.{f}.Name=tag:k&"))
        })
        .collect();
    let p = Params::parse(nested.as_bytes());
    let (filters, _) = bounded("100 filters of 100 values", nested.len(), || {
        stratus_api::ec2::filters::parse(&p, &[])
    });
    assert_eq!(filters.expect("filters").len(), 100);
}

#[test]
fn the_verifiers_stay_bounded_on_huge_requests() {
    let body = vec![b'A'; 4 * MIB];
    let headers = vec![
        ("host".to_owned(), "h".to_owned()),
        ("x-amz-date".to_owned(), "20261122T123456Z".to_owned()),
        (
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20261122/nova/ec2/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                "0".repeat(64)
            ),
        ),
    ];
    let request = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &body,
    };
    let verify_now = |request: &SignedRequest| {
        verify(
            request,
            "secret",
            SystemTime::now(),
            Duration::from_secs(300),
        )
    };
    let (result, bytes) = bounded("SigV4, 4 MiB body", body.len(), || verify_now(&request));
    assert!(result.is_err());
    assert!(bytes < 3 * body.len(), "{bytes}");

    let v2 = [
        b"AWSAccessKeyId=a&SignatureVersion=2&SignatureMethod=HmacSHA256&Signature=x&".as_slice(),
        &pairs(100_000),
    ]
    .concat();
    let request = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers[..1],
        body: &v2,
    };
    let (result, bytes) = bounded("SigV2, 100k pairs", v2.len(), || verify_now(&request));
    assert!(result.is_err());
    assert!(bytes < 80 * v2.len(), "{bytes}");
}

#[test]
fn rendering_megabytes_of_hostile_text_stays_linear() {
    let text = "<&>\"'\r\0]]>".repeat(MIB / 10);
    let (doc, bytes) = bounded("XML of 1 MiB of metacharacters", text.len(), || {
        let mut x = Xml::response("DescribeTags", "r");
        x.text("value", &text);
        x.finish("DescribeTags")
    });
    assert!(doc.len() < 7 * text.len());
    assert!(bytes < 16 * text.len(), "{bytes}");
    assert!(crate::xml_doc::read(&doc).is_ok());
}

#[test]
fn the_rule_parser_refuses_megabyte_fields_with_short_messages() {
    let huge = "9".repeat(MIB);
    for spec in [
        RuleSpec {
            protocol: huge.clone(),
            from_port: None,
            to_port: None,
            cidr: Some("0.0.0.0/0".into()),
            source_group: None,
        },
        RuleSpec {
            protocol: "tcp".into(),
            from_port: Some(1),
            to_port: Some(2),
            cidr: Some(huge.clone()),
            source_group: None,
        },
        RuleSpec {
            protocol: "udp".into(),
            from_port: None,
            to_port: None,
            cidr: None,
            source_group: Some(format!("sg-{huge}")),
        },
    ] {
        let (result, _) = bounded("rule with a 1 MiB field", MIB, || {
            IngressRule::try_from(spec)
        });
        let message = result.expect_err("refused").to_string();
        assert!(message.len() < 256, "a {} byte message", message.len());
    }
}
